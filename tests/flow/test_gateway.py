"""Chat-ops end to end on the embedded bus: a Slack slash command clones the sample production, and the
outcome reaches the command's response_url (a loopback server standing in for Slack)."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from slack_sdk.signature import SignatureVerifier

from clouds.local.sample import make_sample_production
from core.registry import DELETED, FAILED, READY
from tests.support.gateway import GATEWAY, SECRETS, Front, ReplyCatcher, call, embedded_gateway_env
from tests.support.waiting import wait_for


@pytest.fixture
def shop_front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    production = tmp_path / "production" / "shop"
    entry = make_sample_production(production)
    front = Front(tmp_path, productions={"shop": entry})
    front.production = production
    catcher = ReplyCatcher()
    yield front, catcher
    catcher.close()
    front.close()


def slash(front: Front, text: str, response_url: str):
    body = urlencode({"team_id": "T1", "channel_id": "C1", "user_id": "U1", "user_name": "alice",
                      "command": "/doppel", "text": text, "response_url": response_url}).encode()
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRETS["DOPPEL_TEST_SLACK_SIGNING"]).generate_signature(
        timestamp=stamp, body=body.decode())
    return front.call("POST", "/chat/slack", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                    "X-Slack-Request-Timestamp": stamp,
                                                    "X-Slack-Signature": signature})


def test_a_slash_command_clones_production_and_the_result_reaches_the_response_url(shop_front):
    front, catcher = shop_front

    ack = slash(front, "env create perf-test --from shop --ttl 8h", catcher.url)

    assert ack.status == 200
    assert ack.json["response_type"] == "ephemeral"
    assert ack.json["text"].startswith("Creating perf-test from shop, deleted after 8h")
    replies = sorted(r["text"] for r in catcher.wait_for(3))  # two steps, then the outcome
    env = front.app.registry.living("perf-test")
    assert env.state == READY and env.owner == "alice" and env.expires_at is not None
    assert len(replies) == 3, replies
    ready, snapshot, stack = replies
    assert snapshot.startswith("perf-test: snapshot of shop taken; making its stack (step 1 of 3)")
    assert stack.startswith("perf-test: stack up; configuring it")
    assert ready.startswith("Environment perf-test is ready until")
    assert f"root: {env.endpoints['root']}" in ready
    requested = front.app.audit.events(event_type="env.requested")[0]
    assert requested.data["reply_to"] == catcher.url and requested.source == "doppel/gateway/slack"

    # The same name again is answered at once, and nothing new is requested
    again = slash(front, "env create perf-test --from shop", catcher.url)
    assert "already exists (ready" in again.json["text"]
    assert len(front.app.audit.events(event_type="env.requested")) == 1


def test_a_failed_clone_reaches_the_response_url_with_its_reason(shop_front):
    front, catcher = shop_front
    shutil.rmtree(front.production)  # production's files are gone: the snapshot cannot succeed

    ack = slash(front, "env create broken-copy --from shop", catcher.url)

    assert ack.status == 200 and ack.json["text"].startswith("Creating broken-copy")
    [reply] = catcher.wait_for(1)
    assert reply["text"].startswith("Env of broken-copy failed at snapshot")
    assert front.app.registry.latest("broken-copy").state == FAILED


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answer_or_none(url: str, path: str):
    try:
        return call(url, "GET", path)
    except OSError:
        return None  # not listening yet


def test_doppel_run_serves_the_gateway_beside_the_worker(tmp_path):
    port = free_port()
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"),
                                      "gateway": {**GATEWAY, "port": port}}))
    environ = {k: v for k, v in os.environ.items() if k != "DOPPEL_AMQP_URL"}
    process = subprocess.Popen([sys.executable, "-m", "doppel", "--config", str(config), "run"],
                               env={**environ, **SECRETS}, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: answer_or_none(url, "/health"), 60, "doppel run to listen",
                          explain=lambda: "" if process.poll() is None else process.communicate()[1])
        alert = call(url, "POST", f"/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}",
                     b'{"alarm_id": "a1", "current": "alarm"}', {"Content-Type": "application/json"})
        assert health.status == 200 and health.json["bus"] == "embedded"
        assert alert.status == 202
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "/hooks/aodh/[redacted] 202" in stderr and SECRETS["DOPPEL_TEST_AODH_SECRET"] not in stderr
    # The worker in that process handled the alert: it is in the audit trail of its database
    listed = subprocess.run([sys.executable, "-m", "doppel", "--config", str(config), "events", "--type",
                             "monitor.alert"], env=environ, capture_output=True, text=True, check=True)
    assert "monitor.alert" in listed.stdout


def test_a_slash_command_deletes_an_environment_after_backing_it_up(shop_front):
    front, catcher = shop_front
    slash(front, "env create perf-test --from shop", catcher.url)
    catcher.wait_for(3)  # two steps, then the outcome
    env = front.app.registry.living("perf-test")
    root = Path(env.endpoints["root"])
    assert env.state == READY and root.exists()

    ack = slash(front, "env delete perf-test", catcher.url)

    assert ack.status == 200 and ack.json["text"].startswith("Backing up, then deleting perf-test (request ")
    front.quiesce()
    (expired,) = front.app.audit.events(event_type="env.expired")
    assert expired.data == {"env": "perf-test", "reason": "manual"} and expired.source == "doppel/gateway/slack"
    (backup,) = front.app.backups.list("perf-test")
    (deleted,) = front.app.audit.events(event_type="env.deleted")
    assert deleted.data["backup_id"] == backup.id
    assert front.app.registry.living("perf-test") is None and front.app.registry.latest("perf-test").state == DELETED
    assert not root.exists()

    # Deleting it again is answered, and publishes nothing
    again = slash(front, "env delete perf-test", catcher.url)
    assert again.json["text"].startswith("No living environment perf-test")
    front.quiesce()
    assert len(front.app.audit.events(event_type="env.expired")) == 1
