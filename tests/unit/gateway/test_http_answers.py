"""Answers of the gateway told over HTTP only: a broker that does not confirm (503 + Retry-After), the status API
made public, ended environments behind ?all=1, and a body sent without its length (411)."""
import socket

from core.broker import PublishError
from core.registry import FAILED
from tests.support.gateway import GATEWAY, SECRETS, Front, embedded_gateway_env

ALERT = {"alarm_id": "a1", "current": "alarm"}


class Unconfirmed:
    """The embedded broker, except that nothing published is confirmed (a broker that went away)."""

    def __init__(self, real):
        self._real, self.tried = real, 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def publish(self, messages, timeout=None):
        self.tried += 1
        raise PublishError("no confirm within 2 s: the connection was lost")


def test_an_event_the_broker_does_not_confirm_is_a_503_with_retry_after_and_the_next_one_is_accepted(front: Front):
    real = front.app.broker
    front.app.__dict__["broker"] = broker = Unconfirmed(real)
    hook = f"/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}"

    refused = front.post_json(hook, ALERT)

    assert refused.status == 503 and refused.headers["retry-after"] == "5" and broker.tried == 1
    assert "did not confirm" in refused.json["error"]
    front.app.__dict__["broker"] = real
    accepted = front.post_json(hook, ALERT)
    assert accepted.status == 202 and front.audited(accepted.json["id"]).type == "monitor.alert"


def test_a_public_status_api_answers_without_the_token(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    public = Front(tmp_path, gateway={"port": 0, "status": {"public": True}})
    try:
        public.app.registry.request(name="perf-test", request_id="test/1", production="shop")
        listed = public.call("GET", "/status/envs")
        shown = public.call("GET", "/status/envs/perf-test")
        assert listed.status == shown.status == 200
        assert [e["name"] for e in listed.json["environments"]] == ["perf-test"] and shown.json["state"] == "requested"
    finally:
        public.close()


def test_a_public_status_page_asks_a_browser_for_nothing_even_when_an_events_token_is_set(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    public = Front(tmp_path, gateway={"port": 0, "events": GATEWAY["events"], "status": {"public": True}})
    try:
        public.app.registry.request(name="perf-test", request_id="test/1", production="shop")
        page = public.call("GET", "/status")
        assert page.status == 200 and "www-authenticate" not in {k.lower() for k in page.headers}
        assert "perf-test" in page.body.decode()
    finally:
        public.close()


def test_a_status_api_with_neither_token_nor_public_is_not_served(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    closed = Front(tmp_path, gateway={"port": 0, "aodh": GATEWAY["aodh"]})
    try:
        answer = closed.call("GET", "/status/envs")
        assert answer.status == 404 and "status.public" in answer.json["error"]
    finally:
        closed.close()


def test_ended_environments_are_listed_only_with_all(front: Front):
    registry = front.app.registry
    registry.request(name="living", request_id="test/1", production="shop")
    ended, _ = registry.request(name="ended", request_id="test/2", production="shop")
    registry.move(ended, FAILED, reason="snapshot: no such production")

    default = front.call("GET", "/status/envs", headers=front.bearer())
    everything = front.call("GET", "/status/envs?all=1", headers=front.bearer())

    assert [e["name"] for e in default.json["environments"]] == ["living"]
    assert sorted(e["name"] for e in everything.json["environments"]) == ["ended", "living"]


def test_a_body_without_its_length_is_a_411_and_publishes_nothing(front: Front):
    before = front.quiesce()
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']} HTTP/1.1\r\nHost: x\r\n".encode() +
                     b"Content-Type: application/json\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 411 ") and b"Content-Length is required" in answer
    assert front.quiesce() == before
