"""Bounds on what people and systems send, refused at every door with the same clear reason: a TTL no
database column holds (10^20 s), a TTL over `environments.max_ttl`, an owner of megabytes. What gets past a
door anyway (a raw publish) is parked as invalid at once, never retried; `env list` stays bounded."""
import json

import pytest
import yaml

import functions
from bus import topology
from clouds.local.driver import LocalDriver
from clouds.local.sample import make_sample_production
from core.broker import H_ATTEMPT, H_ERROR, H_ERROR_KIND
from core.deps import Deps
from core.registry import Registry
from doppel.app import App
from doppel.cli import main
from doppel.config import parse_config
from schemas.envelope import Event
from tests.flow.test_gateway import slash
from tests.support.gateway import Front, embedded_gateway_env

HUGE_TTL = 10 ** 20


def test_a_worker_parks_a_huge_ttl_as_invalid_at_once_without_running_the_handler(bus, tmp_path):
    # Given a worker serving snapshot (a request that got past every door, published raw)
    config = parse_config({"productions": {"shop": make_sample_production(tmp_path / "shop")}}, None)
    bus.deps = Deps(config=config, audit=bus.audit, registry=Registry(bus.engine),
                    cloud=LocalDriver(tmp_path / "state" / "local", config["productions"]))
    worker = bus.worker([functions.snapshot])
    request = Event(type="env.requested", source="test", data={"env": "perf-test", "production": "shop",
                                                               "ttl_seconds": HUGE_TTL})

    # When it arrives
    bus.publish(request)
    bus.settle(lambda: worker.stats.counts["invalid:snapshot"] == 1)

    # Then it is parked as invalid on its first delivery, with the schema's reason; nothing ran, nothing retried
    parked = worker.broker.get(topology.dead_queue("snapshot"))
    assert parked.message.message_id == request.id
    assert parked.message.headers[H_ERROR_KIND] == "invalid" and int(parked.message.headers[H_ATTEMPT]) == 1
    assert "ttl_seconds" in parked.message.headers[H_ERROR] and "must be between 1 second" in \
        parked.message.headers[H_ERROR]
    parked.ack()
    assert worker.stats.counts["retried:snapshot"] == 0 and bus.deps.registry.latest("perf-test") is None


@pytest.fixture
def shop_front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    front = Front(tmp_path, productions={"shop": make_sample_production(tmp_path / "production" / "shop")})
    yield front
    front.close()


def test_the_gateway_and_chat_refuse_a_huge_ttl_and_a_huge_owner_and_publish_nothing(shop_front):
    front = shop_front
    before = front.quiesce()

    def post(**data):
        event = {"specversion": "1.0", "id": f"req-{len(data)}-{sorted(data)[0]}", "source": "test/http",
                 "type": "env.requested", "data": {"env": "perf-test", "production": "shop", **data}}
        return front.call("POST", "/events", json.dumps(event).encode(),
                          {"Content-Type": "application/cloudevents+json", **front.bearer()})

    huge_ttl, huge_owner = post(ttl_seconds=HUGE_TTL), post(owner="x" * 100_000)
    chat = slash(front, f"env create perf-test --from shop --ttl {HUGE_TTL}", "http://127.0.0.1:9/unused")

    assert huge_ttl.status == 400 and "must be between 1 second" in huge_ttl.json["errors"]["ttl_seconds"][0]
    assert huge_owner.status == 400 and huge_owner.json["errors"]["owner"] == ["must be at most 128 characters"]
    assert chat.status == 200 and chat.json["text"].startswith(
        "Cannot create that environment: ttl_seconds must be between 1 second and 315360000 seconds")
    assert front.quiesce() == before  # nothing was published


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    path = tmp_path / "doppel.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "environments": {"max_ttl": "7d"},
                                    "productions": {"shop": make_sample_production(tmp_path / "shop")}}))
    return str(path)


@pytest.mark.parametrize("arguments, refusal", [
    (["--ttl", f"{HUGE_TTL}s"], f"--ttl {HUGE_TTL}s: a TTL of 1e+20 s is longer than this Doppel allows (7d, "
                                "environments.max_ttl in doppel.yaml); ask for less"),
    (["--ttl", "9" * 400 + "s"], "an endless TTL is longer than this Doppel allows (7d"),
    (["--ttl", "8d"], "a TTL of 8d is longer than this Doppel allows (7d"),
    (["--ttl", "0s"], "--ttl: '0s' must be longer than zero"),
    (["--ttl", "30"], "--ttl: '30' has no unit; write e.g. 30s, 30m or 30h"),
    (["--owner", "x" * 129], "env.requested is invalid: owner: must be at most 128 characters"),
])
def test_env_create_refuses_out_of_bounds_requests_with_the_reason_and_no_traceback(config_file, capsys,
                                                                                     arguments, refusal):
    code = main(["--config", config_file, "env", "create", "perf-test", "--from", "shop", *arguments])

    assert code == 2 and refusal in capsys.readouterr().err
    app = App.load(config_file)
    try:
        assert app.registry.all(include_ended=True) == []
    finally:
        app.close()


def test_doppel_publish_refuses_a_huge_ttl(config_file, capsys):
    data = json.dumps({"env": "perf-test", "production": "shop", "ttl_seconds": HUGE_TTL})

    code = main(["--config", config_file, "publish", "env.requested", "--data", data])

    assert code == 2 and "env.requested is invalid: ttl_seconds: must be between 1 second" in capsys.readouterr().err


def test_env_list_prints_a_bounded_line_whatever_the_owner(config_file, capsys, state_db_url):
    if state_db_url:
        pytest.skip("PostgreSQL enforces the owner column's varchar(128): such a row cannot be there")
    # Given an environment registered (before the bounds) with a 5 MB owner holding a terminal escape
    app = App.load(config_file)
    try:
        app.registry.request(name="perf-test", request_id="test/1", production="shop",
                             owner="\x1b[2J" + "x" * 5_000_000)
        app.registry.request(name="qa-copy", request_id="test/2", production="shop", owner="bob")
    finally:
        app.close()

    assert main(["--config", config_file, "env", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert len(lines) == 3 and all(len(line) < 200 for line in lines)
    assert "?[2Jxxxxx" in lines[1] and "\x1b" not in lines[1] and "xxx\u2026" in lines[1]
    assert lines[2].split()[:4] == ["qa-copy", "requested", "shop", "bob"]
