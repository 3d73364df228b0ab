"""The gateway on a real RabbitMQ: it only publishes (no worker in its process), and what it answers 202
for is confirmed and waiting in the queues; what it refuses is not there."""
import json

import pytest

import functions
from bus import topology
from doppel.app import App
from doppel.roles import start_gateway
from doppel.config import parse_config
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
