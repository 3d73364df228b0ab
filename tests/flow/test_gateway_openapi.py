"""The gateway's OpenAPI document: valid OpenAPI 3, built from the bus's marshmallow schemas, and held to by the
running gateway under `schemathesis run` (bounded examples): no 5xx, no answer outside the document, every
refusal JSON that says what was wrong, and nothing published but what the gateway said it published.

No worker runs, so every published event waits in the audit queue to be counted (as in the fuzz test).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pytest
from openapi_spec_validator import validate

import functions
from bus import topology
from clouds.local.sample import make_sample_production
from doppel.app import App
from doppel.config import parse_config
from doppel.roles import start_gateway
from schemas.events import SCHEMAS, EnvRequested
from tests.support.gateway import GATEWAY, SECRETS, call

MAX_EXAMPLES = 20  # per operation and phase: about 500 requests, a few seconds
PUBLISHED_IN_CHAT = re.compile(r"\(request ([^)]+)\)")


@pytest.fixture
def lone_gateway(tmp_path, monkeypatch, state_db_url):
    """A gateway with no worker, on the embedded bus, with the sample production `shop`."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    monkeypatch.setenv("DOPPEL_DB_URL", state_db_url or f"sqlite:///{tmp_path / 'doppel.db'}")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    shop = make_sample_production(tmp_path / "production" / "shop")
    app = App(parse_config({"state_dir": str(tmp_path / "state"), "gateway": GATEWAY,
                            "productions": {"shop": shop}}, None), role="gateway")
    server = start_gateway(app, functions.FUNCTIONS)
    yield app, server.url
    server.stop()
    app.close()


def published_ids(app) -> list[str]:
    ids, queue = [], topology.function_queue("audit")
    while (delivery := app.broker.get(queue)) is not None:
        ids.append(delivery.message.message_id)
        delivery.ack()
    return ids


def test_the_document_is_valid_openapi_3_built_from_the_bus_schemas(lone_gateway):
    _, url = lone_gateway

    document = call(url, "GET", "/openapi.json").json

    validate(document)  # openapi-spec-validator: raises on any fault
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    # Every event type's data schema is there, field for field as the bus validates it
    assert {cls.__name__ for cls in SCHEMAS.values()} <= set(schemas)
    assert set(schemas["EnvRequested"]["properties"]) == set(EnvRequested._declared_fields)
    assert schemas["EnvRequested"]["properties"]["ttl_seconds"]["maximum"] == 10 * 365 * 86400
    assert set(schemas["CloudEvent"]["properties"]["type"]["enum"]) == set(SCHEMAS)
    assert {"/events", "/hooks/aodh/{secret}", "/chat/slack", "/chat/mattermost", "/status/envs",
            "/health", "/metrics"} <= set(document["paths"])


def test_schemathesis_finds_no_5xx_no_answer_outside_the_document_and_nothing_published_unsaid(
        lone_gateway, tmp_path):
    app, url = lone_gateway
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""
headers = {{ Authorization = "Bearer {SECRETS['DOPPEL_TEST_GATEWAY_TOKEN']}" }}

[[operations]]
include-path = "/chat/mattermost"
headers = {{ Authorization = "Token {SECRETS['DOPPEL_TEST_MATTERMOST_TOKEN']}" }}

[[operations]]
include-path = "/hooks/aodh/{{secret}}"
parameters = {{ secret = "{SECRETS['DOPPEL_TEST_AODH_SECRET']}" }}
""")
    har = tmp_path / "run.har"

    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(config), "run",
         f"{url}/openapi.json", "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
         "--seed", "20140", "--report", "har", "--report-har-path", str(har)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    entries = json.loads(har.read_text())["log"]["entries"]
    said, statuses = [], Counter()
    for entry in entries:
        status, text = entry["response"]["status"], entry["response"]["content"].get("text") or ""
        statuses[status] += 1
        assert status < 500, (entry["request"]["url"], text[:300])
        if status >= 400 and entry["request"]["method"] != "HEAD":
            assert json.loads(text)["error"], text[:300]
        if status == 202:
            said.append(json.loads(text)["id"])
        elif status == 200 and '"response_type"' in text:
            said += PUBLISHED_IN_CHAT.findall(json.loads(text)["text"])
    assert Counter(published_ids(app)) == Counter(said)
    assert statuses[202] > 0 and statuses[400] > 0 and len(entries) > 100, statuses
