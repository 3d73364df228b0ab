"""A running gateway for tests: an embedded Doppel (worker in the background) and the real HTTP
server on 127.0.0.1 with an ephemeral port, plus a plain http.client caller."""
from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import functions
from doppel.app import App
from doppel.config import parse_config
from doppel.roles import start_gateway
from tests.support.waiting import wait_for

SECRETS = {"DOPPEL_TEST_GATEWAY_TOKEN": "events-token-7c1f9e",
           "DOPPEL_TEST_AODH_SECRET": "aodh-hook-secret-41d2",
           "DOPPEL_TEST_SLACK_SIGNING": "slack-signing-secret-9a8b",
           "DOPPEL_TEST_MATTERMOST_TOKEN": "mattermost-token-5e6f"}
GATEWAY = {"port": 0,
           "events": {"token_env": "DOPPEL_TEST_GATEWAY_TOKEN"},
           "aodh": {"secret_env": "DOPPEL_TEST_AODH_SECRET"},
           "slack": {"signing_secret_env": "DOPPEL_TEST_SLACK_SIGNING"},
           "mattermost": {"token_env": "DOPPEL_TEST_MATTERMOST_TOKEN"}}


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


def call(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
    """One HTTP request with exactly these headers (http.client adds Host and, with a body, Content-Length)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def embedded_gateway_env(monkeypatch, **extra: str) -> None:
    """An embedded Doppel's environment for a gateway test: no bus URL from the shell running the tests, and the
    gateway's secrets (with `extra` ones). The database is the flow tests' state_db_url fixture's."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    for name, value in {**SECRETS, **extra}.items():
        monkeypatch.setenv(name, value)


class Front:
    """An embedded Doppel serving every function, with its gateway listening."""

    def __init__(self, tmp_path: Path, gateway: dict | None = None, productions: dict | None = None,
                 dr: dict | None = None, **sections):
        document = {"state_dir": str(tmp_path / "state"), "gateway": gateway or GATEWAY,
                    "productions": productions or {}, **sections}
        if dr:
            document["dr"] = dr
        self.app = App(parse_config(document, None), role="test")
        self.worker = self.app.worker(functions.FUNCTIONS)
        self.worker.start()
        self.app.broker.start()
        self.server = start_gateway(self.app, functions.FUNCTIONS)
        self.url = self.server.url
        self._markers = 0

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        return call(self.url, method, path, body, headers)

    def post_json(self, path: str, document, headers: dict | None = None) -> Answer:
        return self.call("POST", path, json.dumps(document).encode(),
                         {"Content-Type": "application/json", **(headers or {})})

    def audited(self, event_id: str, timeout: float = 15.0):
        """The audit record of that event id, once the worker recorded it (AssertionError after `timeout`)."""
        return wait_for(lambda: next((r for r in self.app.audit.events() if r.id == event_id), None), timeout,
                        f"event {event_id} to be audited")

    def quiesce(self) -> int:
        """Push one known event through and wait for it, so whatever was published before is handled too.

        Returns the audit count without the marker events.
        """
        marker = {"specversion": "1.0", "id": f"marker-{time.monotonic_ns()}", "source": "test/marker",
                  "type": "notify.sent", "data": {"text": "marker"}}
        answer = self.call("POST", "/events", json.dumps(marker).encode(),
                           {"Content-Type": "application/cloudevents+json", **self.bearer()})
        assert answer.status == 202, answer.body
        self.audited(marker["id"])
        self._markers += 1
        return self._settled_count() - self._markers

    def _settled_count(self, timeout: float = 15.0) -> int:
        """The audit count once the bus is idle: nothing ready, unacked or delayed (the handlers of earlier events
        run on other threads and may finish after the marker's; each acks only after its effects are written)."""
        wait_for(self.app.broker.idle, timeout, "the bus to settle")
        return self.app.audit.count()

    def gateway_metric(self, family: str, *labels: str) -> int:
        return self.server.gateway.metrics.value(family, *labels)

    @staticmethod
    def bearer(token: str = SECRETS["DOPPEL_TEST_GATEWAY_TOKEN"]) -> dict:
        return {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        self.server.stop()
        self.app.close()  # stops the worker too, after the handlers it is running


def back_up(front: Front, production: str) -> str:
    """A backup of `production` by hand (as `doppel backup now` makes one); its id."""
    return front.app.backups.back_up(production, front.app.cloud.backup_source(production), reason="manual").backup_id


def publish(front: Front, event_type: str, seconds: float = 180, **data) -> None:
    """Publish as the scheduler (sync.due, drill.due) or `doppel dr failback` does; wait for the answer (its
    .done or .failed, by correlation id), then for the bus to be quiet."""
    from core.broker import event_message
    from doppel.cli.common import build_event
    event = build_event(event_type, data, source="test")
    front.app.broker.publish([event_message(event)])
    kind = event_type.split(".")[0]
    wait_for(lambda: [e for outcome in (f"{kind}.done", f"{kind}.failed")
                      for e in front.app.audit.events(event_type=outcome) if e.correlation_id == event.id],
             seconds, f"the answer to {event_type}", interval=0.2)
    front.quiesce()


def frozen(front: Front, production: str) -> set:
    """The job types paused for `production` (a failover freezes sync and backups until the failback)."""
    return {kind for pause in front.app.deps.scheduler.pauses()
            if pause.selector.get("production") in (production, [production]) for kind in pause.selector["types"]}


class ReplyCatcher:
    """A loopback HTTP server standing in for a slash command's response_url: it keeps every JSON POSTed."""

    def __init__(self):
        self.received: list[dict] = []
        self._arrived = threading.Condition()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with catcher._arrived:
                    catcher.received.append(json.loads(body))
                    catcher._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/commands/response/T1/B2"

    def wait_for(self, count: int = 1, timeout: float = 60.0) -> list[dict]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
