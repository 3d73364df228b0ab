"""POST /hooks/aodh with X-Auth-Token (trust+http actions), checked with Keystone's identity v3 token API.

Keystone here is a loopback stand-in speaking the documented API (POST and GET
/v3/auth/tokens); it checks how the gateway uses the protocol (its own token's login and
renewal, Keystone unreachable). What Keystone itself decides (trust-scoped tokens, another
project, a missing role, expiry, the cache) is proved against the test bed's real Keystone in
tests/integration/openstack/test_keystone_tokens.py.
"""
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.support.gateway import Front, embedded_gateway_env

PASSWORD = "service-password-3e9d"
ALERT = {"alarm_id": "a1", "alarm_name": "shop-down", "severity": "critical", "previous": "ok",
         "current": "alarm", "reason": "down", "reason_data": {"type": "threshold"}}


class KeystoneStandIn:
    """Issues service tokens for the right password; knows which user tokens are valid, for which project."""

    def __init__(self):
        self.user_tokens = {"trust-token-ok": "project-shop", "trust-token-other": "project-elsewhere"}
        self.service_tokens: set[str] = set()
        self.calls: list[tuple[str, str | None]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                password = body["auth"]["identity"]["password"]["user"]["password"]
                stand_in.calls.append(("login", None))
                if password != PASSWORD:
                    return self._answer(401, {})
                token = f"service-token-{len(stand_in.service_tokens)}"
                stand_in.service_tokens.add(token)
                self._answer(201, {"token": {"expires_at": _later(3600)}}, {"X-Subject-Token": token})

            def do_GET(self):
                stand_in.calls.append(("validate", self.headers.get("X-Subject-Token")))
                if self.headers.get("X-Auth-Token") not in stand_in.service_tokens:
                    return self._answer(401, {})
                project = stand_in.user_tokens.get(self.headers.get("X-Subject-Token"))
                if project is None:
                    return self._answer(404, {})
                self._answer(200, {"token": {"project": {"id": project}, "roles": [{"name": "member"}],
                                             "expires_at": _later(3600), "OS-TRUST:trust": {"id": "t1"}}})

            def _answer(self, status, document, headers=None):
                raw = json.dumps(document).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", "Content-Length": str(len(raw)),
                                    **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v3"

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


def _later(seconds: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def keystone_front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch, DOPPEL_TEST_KEYSTONE_PASSWORD=PASSWORD)
    keystone = KeystoneStandIn()
    gateway = {"port": 0, "events": {"token_env": "DOPPEL_TEST_GATEWAY_TOKEN"},
               "aodh": {"keystone": {"auth_url": keystone.url, "username": "doppel", "project": "service",
                                     "password_env": "DOPPEL_TEST_KEYSTONE_PASSWORD",
                                     "allowed_projects": ["project-shop"]}}}
    front = Front(tmp_path, gateway=gateway)
    yield front, keystone
    front.close()
    keystone.close()


def post_with_token(front: Front, token: str):
    return requests.post(f"{front.url}/hooks/aodh", data=json.dumps(ALERT), timeout=30,
                         headers={"Content-Type": "application/json", "X-Auth-Token": token,
                                  "x-openstack-request-id": "req-trust-1"})


def test_a_token_keystone_accepts_publishes_the_alert_and_is_remembered(keystone_front):
    front, keystone = keystone_front

    first = post_with_token(front, "trust-token-ok")
    second = post_with_token(front, "trust-token-ok")

    assert first.status_code == second.status_code == 202
    assert front.audited(first.json()["id"]).type == "monitor.alert"
    assert keystone.calls == [("login", None), ("validate", "trust-token-ok")]  # the second was cached


def test_unknown_tokens_other_projects_and_no_token_are_refused_and_publish_nothing(keystone_front):
    front, keystone = keystone_front
    before = front.quiesce()

    unknown = post_with_token(front, "forged-token")
    elsewhere = post_with_token(front, "trust-token-other")
    no_token = requests.post(f"{front.url}/hooks/aodh", json=ALERT, timeout=30)
    secret_route_without_secret = requests.post(f"{front.url}/hooks/aodh/guess", json=ALERT, timeout=30)

    assert [r.status_code for r in (unknown, elsewhere, no_token, secret_route_without_secret)] == [401] * 4
    assert "project-elsewhere" in elsewhere.json()["error"]
    assert front.quiesce() == before


def test_a_revoked_service_token_is_replaced_once(keystone_front):
    front, keystone = keystone_front
    assert post_with_token(front, "trust-token-ok").status_code == 202
    keystone.service_tokens.clear()  # Keystone forgot the gateway's own token
    keystone.user_tokens["trust-token-new"] = "project-shop"

    answer = post_with_token(front, "trust-token-new")

    assert answer.status_code == 202
    assert [kind for kind, _ in keystone.calls] == ["login", "validate", "validate", "login", "validate"]


def test_keystone_unreachable_is_a_503_not_a_401(keystone_front):
    front, keystone = keystone_front
    keystone.close()

    answer = post_with_token(front, "trust-token-ok")

    assert answer.status_code == 503 and "Keystone" in answer.json()["error"]
