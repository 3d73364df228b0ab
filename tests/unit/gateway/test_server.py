"""The plumbing every route shares: status, health, metrics, body limits, 404/405, and secrets kept out."""
import http.client
import json
import socket

import pytest
from sqlalchemy import create_engine

import functions
from core.errors import ConfigError
from doppel.app import App
from doppel.config import parse_config
from gateway.routes import Gateway
from tests.support.gateway import SECRETS, Front, embedded_gateway_env
from tests.support.waiting import wait_for


def test_status_lists_and_shows_environments_behind_the_token(front: Front):
    env, _ = front.app.registry.request(name="perf-test", request_id="test/1", production="shop", owner="bob")

    anonymous = front.call("GET", "/status/envs")
    listed = front.call("GET", "/status/envs", headers=front.bearer())
    shown = front.call("GET", "/status/envs/perf-test", headers=front.bearer())
    missing = front.call("GET", "/status/envs/ghost", headers=front.bearer())

    assert anonymous.status == 401
    assert [e["name"] for e in listed.json["environments"]] == ["perf-test"]
    assert shown.json["state"] == "requested" and shown.json["owner"] == "bob"
    assert [h["to"] for h in shown.json["history"]] == ["requested"]
    assert missing.status == 404 and "ghost" in missing.json["error"]


def test_health_says_which_part_answers(front: Front):
    healthy = front.call("GET", "/health")
    assert healthy.status == 200
    assert healthy.json["broker"]["ok"] and healthy.json["database"]["ok"]

    # A real engine on a database that cannot be opened, in place of the working one
    front.app.__dict__["engine"] = create_engine("sqlite:////nonexistent-dir/doppel.db")
    sick = front.call("GET", "/health")

    assert sick.status == 503
    assert sick.json["broker"]["ok"] is True and sick.json["database"]["ok"] is False


def test_metrics_count_published_events_by_route_and_refusals_by_reason(front: Front):
    front.post_json(f"/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}", {"alarm_id": "a1", "current": "alarm"})
    front.post_json("/hooks/aodh/wrong", {"alarm_id": "a1", "current": "alarm"})

    text = front.call("GET", "/metrics")

    assert text.headers["content-type"].startswith("text/plain; version=")
    lines = text.body.decode().splitlines()
    assert 'doppel_gateway_events_published_total{route="aodh"} 1.0' in lines
    assert 'doppel_gateway_requests_rejected_total{reason="bad_secret"} 1.0' in lines
    assert "# TYPE doppel_gateway_requests_rejected_total counter" in lines


def test_a_body_over_the_limit_is_a_413_and_publishes_nothing(front: Front):
    before = front.quiesce()
    host, port = front.url.removeprefix("http://").split(":")
    # The refusal comes from the announced length; the client sends only the first bytes, so that the server has
    # read all it was sent when it closes (a close over unread bytes is a reset that may swallow the answer).
    head = (f"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
            f"Authorization: Bearer {SECRETS['DOPPEL_TEST_GATEWAY_TOKEN']}\r\nContent-Length: {1024 * 1024 + 1}\r\n"
            f"Connection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"x" * 1000)
        reply = sock.makefile("rb").read()

    status, _, body = reply.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413") and b"1048576" in json.loads(body)["error"].encode()
    assert front.quiesce() == before


def test_a_chunked_body_is_read_and_limited_too(front: Front):
    host, port = front.url.removeprefix("http://").split(":")
    event = (b'{"specversion":"1.0","id":"chunked-1","source":"test","type":"notify.sent",'
             b'"data":{"text":"in chunks"}}')
    head = (f"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
            f"Authorization: Bearer {SECRETS['DOPPEL_TEST_GATEWAY_TOKEN']}\r\nTransfer-Encoding: chunked\r\n"
            f"Connection: close\r\n\r\n").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (event[:40], event[40:])) + b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + chunks)
        reply = sock.makefile("rb").read()

    assert reply.startswith(b"HTTP/1.1 202")
    assert front.audited("chunked-1").data == {"text": "in chunks"}


def test_wrong_method_and_unknown_route_answer_json(front: Front):
    wrong_method = front.call("GET", "/events")
    unknown = front.call("GET", "/admin")
    deeper = front.call("POST", "/hooks/aodh/aodh-hook-secret-41d2/extra", b"{}")
    head = front.call("HEAD", "/health")

    assert wrong_method.status == 405 and wrong_method.headers["allow"] == "POST"
    assert "error" in wrong_method.json
    assert unknown.status == 404 and "POST /events" in unknown.json["fix"]
    assert deeper.status == 404 and "aodh-hook-secret" not in deeper.body.decode()
    assert head.status == 200 and head.body == b""


def test_a_refused_body_is_not_read_as_the_next_request_on_a_kept_alive_connection(front: Front):
    host, port = front.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/nowhere", body=b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = conn.getresponse()
        first.read()
        conn.request("GET", "/metrics")  # http.client reconnects if the server closed the connection
        second = conn.getresponse()
        second.read()
    finally:
        conn.close()
    assert first.status == 404 and second.status == 200
    assert front.gateway_metric("doppel_gateway_requests_total", "health", "200") == 0


def test_a_route_without_its_section_is_not_enabled(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    bare = Front(tmp_path, gateway={"port": 0})
    try:
        answer = bare.post_json("/hooks/aodh/anything", {"alarm_id": "a1", "current": "alarm"})
        status = bare.call("GET", "/status/envs")
    finally:
        bare.close()
    assert answer.status == 404 and "gateway.aodh" in answer.json["fix"]
    assert status.status == 404 and "status.public" in status.json["fix"]


def test_a_configured_route_whose_secret_variable_is_empty_does_not_start(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.setenv("DOPPEL_TEST_GATEWAY_TOKEN", "")
    gateway = {"events": {"token_env": "DOPPEL_TEST_GATEWAY_TOKEN"}}
    config = parse_config({"state_dir": str(tmp_path), "gateway": gateway}, None)
    app = App(config, role="test")
    try:
        with pytest.raises(ConfigError, match="DOPPEL_TEST_GATEWAY_TOKEN, which is unset or empty"):
            Gateway(app, functions.FUNCTIONS)
    finally:
        app.close()


def test_stopping_while_the_io_thread_is_already_waking_closes_cleanly(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    running = Front(tmp_path)
    trigger = running.server._httpd.trigger
    own_pull = trigger._physical_pull
    woken_before = []

    def pulled_late():
        # A byte another thread wrote a moment earlier wakes the I/O thread, which runs the stop's work
        # before the stop writes its own byte: the order a busy gateway met in the fuzz test (EBADF).
        own_pull()
        wait_for(lambda: not trigger.thunks and not running.server._thread.is_alive(), 10, "the I/O loop ended")
        woken_before.append(True)
        own_pull()
    monkeypatch.setattr(trigger, "_physical_pull", pulled_late)

    # When the gateway stops in that order, it stops without an error, its port closed
    running.close()
    assert woken_before == [True]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", running.server.port), timeout=5).close()
