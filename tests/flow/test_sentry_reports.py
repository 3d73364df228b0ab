"""A parked message reaches Sentry once, tagged, with no secret in it.

The real sentry-sdk sends to a loopback HTTP endpoint that records every
envelope, so what is checked is what Sentry would have received.
"""
import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET_DB = "dbpass-7f3a9c"
SECRET_AMQP = "amqp-pw-51d2e8"

SCRIPT = textwrap.dedent('''
    import os

    import sentry_sdk
    from doppel.app import App
    from doppel.config import parse_config
    from core.errors import PermanentError
    from core.broker import event_message
    from schemas.envelope import Event
    from tests.harness import make_function

    def refuse(event, deps):
        # both secrets reach the report unless scrubbed: one from the event, one from the environment
        raise PermanentError("cannot reach mysql://app:" + event.data["db_password"] + "@db/shop, nor "
                             + os.environ["DOPPEL_AMQP_URL_UNUSED"])

    app = App(parse_config({"state_dir": %(state)r}, None), role="worker", fast_forward=True)
    worker = app.worker([make_function("clone", "env.requested", refuse)])
    worker.start()
    event = Event(type="env.requested", source="test", id="evt-sentry-1",
                  data={"env": "perf-test", "production": "shop", "db_password": %(secret)r})
    app.broker.publish([event_message(event)])
    app.broker.run_until_idle(timeout=30)
    assert worker.stats.counts["parked:clone"] == 1, worker.stats.counts
    sentry_sdk.flush(timeout=10)
''')


class Recorder(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            pytest.fail("sentry-sdk sent brotli; install brotli or set transport_compression_level")
        Recorder.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def sentry_events(received):
    """The `event` items of every envelope (not sessions or client reports)."""
    events = []
    for _path, body in received:
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2]):
            if json.loads(header).get("type") == "event":
                events.append(json.loads(payload))
    return events


def test_a_parked_message_is_reported_once_with_tags_and_without_secrets(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.received = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOPPEL_", "SENTRY_"))}
    env.update(SENTRY_DSN=f"http://public@127.0.0.1:{server.server_port}/1", DOPPEL_DB_PASSWORD=SECRET_DB,
               DOPPEL_AMQP_URL_UNUSED=f"amqp://u:{SECRET_AMQP}@127.0.0.1/", PYTHONPATH=os.getcwd())
    script = SCRIPT % {"state": str(tmp_path), "secret": SECRET_DB}
    try:
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr

    events = sentry_events(Recorder.received)
    assert len(events) == 1, [e.get("message") for e in events]
    tags = events[0]["tags"]
    assert tags["function"] == "clone" and tags["event_type"] == "env.requested"
    assert tags["event_id"] == "evt-sentry-1" and tags["correlation_id"] == "evt-sentry-1"
    everything = b"".join(body for _, body in Recorder.received).decode(errors="replace")
    assert SECRET_DB not in everything and SECRET_AMQP not in everything
    assert "cannot reach mysql://app:" in everything  # the report is there, only the secrets are masked
    assert "nor amqp://u:[redacted]@127.0.0.1/" in everything
    assert SECRET_DB not in run.stderr  # nor in the log lines


EXHAUSTED = textwrap.dedent('''
    import sentry_sdk
    from doppel.app import App
    from doppel.config import parse_config
    from core.broker import event_message
    from schemas.envelope import Event
    from tests.harness import make_function

    def unreachable(event, deps):
        # an unexpected error: retried, then reported with the exception itself, whose text holds the secret
        raise TimeoutError("no answer from mysql://app:" + event.data["db_password"] + "@db/shop")

    app = App(parse_config({"state_dir": %(state)r, "bus": {"retry": {"attempts": 2, "first_delay": "200ms"}}},
                           None), role="worker", fast_forward=True)
    worker = app.worker([make_function("clone", "env.requested", unreachable)])
    worker.start()
    event = Event(type="env.requested", source="test", id="evt-sentry-2",
                  data={"env": "perf-test", "production": "shop", "db_password": %(secret)r})
    app.broker.publish([event_message(event)])
    app.broker.run_until_idle(timeout=30)
    assert worker.stats.counts["parked:clone"] == 1, worker.stats.counts
    sentry_sdk.flush(timeout=10)
''')


def test_an_exception_reported_after_its_retries_reaches_sentry_without_its_secret(tmp_path):
    # Break caught: sentry-sdk's before_send not scrubbing (the exception's own text is sent as it was raised)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.received = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOPPEL_", "SENTRY_"))}
    env.update(SENTRY_DSN=f"http://public@127.0.0.1:{server.server_port}/1", DOPPEL_DB_PASSWORD=SECRET_DB,
               PYTHONPATH=os.getcwd())
    try:
        run = subprocess.run([sys.executable, "-c", EXHAUSTED % {"state": str(tmp_path), "secret": SECRET_DB}],
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr

    (event,) = sentry_events(Recorder.received)
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "TimeoutError" and exception["value"].startswith("no answer from mysql://app:")
    assert SECRET_DB not in json.dumps(event)
