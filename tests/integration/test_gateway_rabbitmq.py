"""The gateway on a real RabbitMQ: it only publishes (no worker in its process), and what it answers 202
for is confirmed and waiting in the queues, or handled by worker processes; what it refuses is not there."""
import json
import threading
import uuid

import pytest

import functions
from bus import topology
from doppel.app import App
from doppel.commands_gateway import start_gateway
from doppel.config import parse_config
from tests.integration.test_bus_rabbitmq import read, start_worker, wait_for
from tests.support.gateway import GATEWAY, SECRETS, call

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def rabbit_gateway(tmp_path, monkeypatch, amqp_url):
    monkeypatch.setenv("DOPPEL_AMQP_URL", amqp_url)
    monkeypatch.setenv("DOPPEL_DB_URL", f"sqlite:///{tmp_path / 'doppel.db'}")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    app = App(parse_config({"state_dir": str(tmp_path), "gateway": GATEWAY}, None), role="gateway")
    server = start_gateway(app, functions.FUNCTIONS)
    yield app, server.url
    server.stop()
    app.close()


def test_accepted_events_are_confirmed_on_rabbitmq_and_refused_ones_are_not(rabbit_gateway):
    app, url = rabbit_gateway
    audit_queue = topology.function_queue("audit")
    alert = json.dumps({"alarm_id": "a1", "alarm_name": "shop-down", "severity": "critical", "previous": "ok",
                        "current": "alarm", "reason": "down", "reason_data": {"type": "threshold"}}).encode()
    headers = {"Content-Type": "application/json", "x-openstack-request-id": "req-1"}

    assert app.embedded is False
    accepted = call(url, "POST", f"/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}", alert, headers)
    refused = call(url, "POST", "/hooks/aodh/not-the-secret", alert, headers)
    health = call(url, "GET", "/health")

    assert accepted.status == 202 and refused.status == 401
    assert health.status == 200 and health.json["bus"] == "rabbitmq"
    assert app.broker.depth(audit_queue) == 1  # no worker here: the confirmed message waits for one
    delivery = app.broker.get(audit_queue)
    body = json.loads(delivery.message.body)
    delivery.ack()
    assert delivery.message.message_id == accepted.json["id"] == body["id"]
    assert body["type"] == "monitor.alert" and body["data"]["alarm_id"] == "a1"


def post_request(url: str, event_id: str, **attributes):
    """POST one env.requested in structured mode, as a CI job would."""
    event = {"specversion": "1.0", "id": event_id, "source": "https://ci.example/jobs/7", "type": "env.requested",
             "data": {"env": "perf-test", "production": "shop"}, **attributes}
    return call(url, "POST", "/events", json.dumps(event).encode(),
                {"Content-Type": "application/cloudevents+json",
                 "Authorization": f"Bearer {SECRETS['DOPPEL_TEST_GATEWAY_TOKEN']}"})


def runs(effects) -> list[str]:
    """The event ids the `count` function ran for, once per run (not de-duplicated)."""
    return [line.removeprefix("ran ") for line in read(effects).splitlines() if line.startswith("ran ")]


@pytest.fixture
def two_workers(tmp_path, amqp_url):
    """Two worker processes serving `count` (one line per handler run in effects.log), sharing the gateway's
    database."""
    workers = [start_worker(tmp_path, amqp_url, "count") for _ in range(2)]
    yield tmp_path / "effects.log"
    for worker in workers:
        worker.kill()
        worker.wait()


def test_a_too_long_id_between_valid_events_is_a_400_and_every_accepted_event_is_handled_once(rabbit_gateway,
                                                                                           two_workers):
    _app, url = rabbit_gateway
    effects = two_workers
    ids = [f"valid-{uuid.uuid4()}", "i" * 300, f"valid-{uuid.uuid4()}", f"valid-{uuid.uuid4()}"]

    # When a valid event, one whose id is 300 characters, then two valid ones are posted, /health asked after each
    answers, health = [], []
    for event_id in ids:
        answers.append(post_request(url, event_id))
        health.append(call(url, "GET", "/health"))

    # Then each gets its own answer, the publisher stays healthy, and each accepted event runs exactly once
    assert [a.status for a in answers] == [202, 400, 202, 202]
    assert (answers[1].json["field"], answers[1].json["bytes"], answers[1].json["limit"]) == ("id", 300, 255)
    assert [(h.status, h.json["publisher"]["ok"]) for h in health] == [(200, True)] * 4
    accepted = [ids[0], ids[2], ids[3]]
    sentinel = f"sentinel-{uuid.uuid4()}"
    assert post_request(url, sentinel).status == 202
    wait_for(lambda: set(accepted + [sentinel]) <= set(runs(effects)), 30, "the accepted events to be handled")
    assert sorted(runs(effects)) == sorted(accepted + [sentinel])
    assert health[-1].json["publisher"]["channels_opened"] == 1


def test_valid_and_too_long_events_posted_in_parallel_are_each_answered_right_and_none_is_lost(rabbit_gateway,
                                                                                            two_workers):
    _app, url = rabbit_gateway
    effects = two_workers
    answers: list[tuple[str, str, int]] = []  # (kind, id, status)
    unhealthy: list = []
    lock = threading.Lock()
    posting = threading.Event()

    def client(n: int) -> None:
        for k in range(12):
            kind = ("valid", "long id", "valid", "long correlationid")[k % 4]
            event_id = f"c{n}-{k}-{uuid.uuid4()}" if kind != "long id" else f"c{n}-{k}-" + "i" * 300
            extra = {"correlationid": "c" * 300} if kind == "long correlationid" else {}
            answer = post_request(url, event_id, **extra)
            with lock:
                answers.append((kind, event_id, answer.status))

    def watch_health() -> None:
        while posting.is_set():
            answer = call(url, "GET", "/health")
            if answer.status != 200 or not answer.json["publisher"]["ok"]:
                unhealthy.append(answer.json)

    # When eight clients post valid and over-long events at once, while /health is watched
    posting.set()
    watcher = threading.Thread(target=watch_health)
    watcher.start()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    posting.clear()
    watcher.join(10)

    # Then every valid one got 202 (no 503) and every over-long one 400, /health never wavered,
    # and each accepted event ran exactly once
    assert len(answers) == 96
    assert {(kind, status) for kind, _id, status in answers} == {("valid", 202), ("long id", 400),
                                                                  ("long correlationid", 400)}
    assert unhealthy == []
    accepted = [event_id for kind, event_id, status in answers if status == 202]
    wait_for(lambda: set(accepted) <= set(runs(effects)), 60, "the 48 accepted events to be handled")
    sentinel = f"sentinel-{uuid.uuid4()}"
    assert post_request(url, sentinel).status == 202
    wait_for(lambda: sentinel in runs(effects), 30, "the sentinel")
    assert sorted(runs(effects)) == sorted(accepted + [sentinel])
