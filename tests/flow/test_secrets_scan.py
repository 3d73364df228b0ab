"""No secret a full chain run used reaches a log line, an event, a dead-letter header, Sentry or chat.

One process (a script, so that sentry-sdk and logging start fresh) runs an
environment's whole life on the embedded bus — created, expired, backed up, deleted —
and a request that fails and is parked, with JSON logs, a chat webhook and Sentry
pointed at a loopback recorder. Then everything that left it is scanned for every
secret it had: the environment variables' (a database password, the webhook's URL,
Sentry's key), the credentials configure made for the environment, production's own,
and one a requester put in an event. `doppel events`, `dlq show` and `trace` are
scanned too: they print what the audit trail and the dead-letter queue hold.
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
from pathlib import Path

import yaml

from clouds.local.sample import make_sample_production

ROOT = Path(__file__).resolve().parents[2]
DB_PASSWORD = "dbpw-6c1f0a93e2"
WEBHOOK_TOKEN = "hooktoken-41b7d2c9"
SENTRY_KEY = "sentrykey5e8a1f"
REQUESTER_SECRET = "requester-pw-9d2e"

SCRIPT = textwrap.dedent('''
    import contextlib, io, json, sys
    import sentry_sdk
    import functions
    from core.broker import QueueSpec, event_message
    from doppel.app import App
    from doppel.cli import main
    from doppel.cli.common import build_event
    from doppel.config import load_config
    from doppel.logs import setup
    from schemas.envelope import Event

    setup(10, "json", "%%Y-%%m-%%d %%H:%%M:%%S")
    config_path = %(config)r
    app = App(load_config(config_path), role="worker", fast_forward=True)
    app.init_sentry()
    app.broker.declare([QueueSpec("tap", "classic", ("#",))])  # every event on the bus
    worker = app.worker(functions.FUNCTIONS)
    worker.start()

    def publish(event):
        app.broker.publish([event_message(event)])
        app.broker.run_until_idle(timeout=120)
        return event

    created = publish(build_event("env.requested", {"env": "perf", "production": "shop"}, source="test"))
    env_file = app.registry.living("perf").endpoints["root"] + "/.env"
    fresh = [line.split("=", 1)[1].split()[0] for line in open(env_file)
             if line.startswith(("DB_PASSWORD=", "APP_SECRET="))]
    publish(build_event("env.expired", {"env": "perf", "reason": "ttl"}, source="test"))
    # A request that fails (an environment may not take its production's name), with a secret in its data
    failed = publish(Event(type="env.requested", source="test", data={
        "env": "shop", "production": "shop", "db_password": %(requester)r}))
    seen = []
    while (delivery := app.broker.get("tap")) is not None:
        seen.append(json.loads(delivery.message.body))
        delivery.ack()
    dead = []
    for function in functions.FUNCTIONS:
        taken = []
        while (delivery := app.broker.get("doppel.fn." + function.NAME + ".dead")) is not None:
            taken.append(delivery)
            dead.append({"id": delivery.message.message_id, "headers": delivery.message.headers})
        for delivery in taken:
            delivery.nack(requeue=True)
    sentry_sdk.flush(timeout=10)
    app.close()

    def cli(*args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--config", config_path, *args]) == 0, args
        return out.getvalue()

    printed = {"events": cli("events", "--json"), "trace": cli("trace", created.id),
               "dlq list": cli("dlq", "list", "-o", "json"),
               "dlq show": "".join(cli("dlq", "show", d["id"]) for d in dead)}
    json.dump({"fresh": fresh, "events": seen, "dead": dead, "printed": printed, "failed": failed.id,
               "env_states": [e.state for e in app.registry.all(include_ended=True)]},
              open(%(report)r, "w"), default=str)
''')


class Recorder(BaseHTTPRequestHandler):
    """Sentry's envelopes and the chat webhook's messages, as they arrive."""
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        body = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body) if encoding == "deflate" \
            else body
        Recorder.received.append((self.path, body.decode(errors="replace")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_a_full_chain_run_leaves_no_secret_in_logs_events_dead_letters_sentry_or_chat(tmp_path):
    # Given a production with secrets of its own, Doppel with secrets in its environment, a chat webhook and Sentry
    entry = make_sample_production(tmp_path / "production" / "shop")
    production_env = (tmp_path / "production" / "shop" / ".env").read_text()
    production_secrets = [line.split("=", 1)[1].split()[0] for line in production_env.splitlines()
                          if line.startswith(("DB_PASSWORD=", "APP_SECRET="))]
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"), "productions": {"shop": entry},
        "bus": {"retry": {"attempts": 2, "first_delay": "100ms"}},
        "notify": {"webhooks": [{"url_env": "DOPPEL_SLACK_WEBHOOK"}]}}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.received = []
    port = server.server_port
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOPPEL_", "SENTRY_"))}
    env.update(PYTHONPATH=str(ROOT), DOPPEL_DB_PASSWORD=DB_PASSWORD,
               DOPPEL_SLACK_WEBHOOK=f"http://127.0.0.1:{port}/hooks/T000/B000/{WEBHOOK_TOKEN}",
               SENTRY_DSN=f"http://{SENTRY_KEY}@127.0.0.1:{port}/1")
    report = tmp_path / "report.json"

    # When an environment lives its whole life, and a request with a secret in it fails
    script = SCRIPT % {"config": str(config), "report": str(report), "requester": REQUESTER_SECRET}
    try:
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240,
                             cwd=tmp_path)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(report.read_text())

    # Then the run did what it should: the environment was made and deleted, the bad request parked and reported
    assert result["env_states"] == ["deleted", "failed"], result["env_states"]
    assert len(result["fresh"]) == 2 and all(len(value) > 20 for value in result["fresh"])
    types = {event["type"] for event in result["events"]}
    assert {"env.ready", "backup.done", "env.deleted", "env.failed"} <= types
    chat = [body for path, body in Recorder.received if path.startswith("/hooks/")]
    sentry = [body for path, body in Recorder.received if path.startswith("/api/")]
    assert any("perf is ready" in body for body in chat) and any("failed" in body for body in chat)
    assert sentry and result["dead"]
    logs = [line for line in run.stderr.splitlines() if line.startswith("{")]
    assert len(logs) > 20

    # And no secret is in any of it
    secrets = {"the database password": DB_PASSWORD, "the webhook's token": WEBHOOK_TOKEN,
               "Sentry's key": SENTRY_KEY, "the requester's password": REQUESTER_SECRET,
               **{f"the environment's credential {n}": v for n, v in enumerate(result["fresh"])},
               **{f"production's secret {n}": v for n, v in enumerate(production_secrets)}}
    emitted = [event for event in result["events"] if event["source"] != "test"]  # not the test's own requests
    places = {"log lines": "\n".join(logs) + run.stderr, "events Doppel published": json.dumps(emitted),
              "dead-letter headers": json.dumps([d["headers"] for d in result["dead"]], default=str),
              "Sentry": "\n".join(sentry), "chat": "\n".join(chat), **result["printed"]}
    found = [f"{what} in {where}" for where, text in places.items() for what, value in secrets.items()
             if value in text]
    assert found == []
    assert "[redacted]" in result["printed"]["events"]  # the requester's password was there to mask


def test_credentials_a_stack_hands_back_in_its_outputs_never_reach_the_registry_events_or_chat(shop, monkeypatch):
    # Given a driver whose stack outputs carry the fresh credentials (a database URL with its password, a token)
    made = {}
    real = shop.app.cloud.configure

    def configure(env, stack, policy, secrets):
        made.update(secrets)
        return {**real(env, stack, policy, secrets), "admin_url": f"https://{env}.example/admin",
                "db_url": f"postgresql://app:{secrets['db_password']}@db.internal/{env}",
                "bootstrap": f"token {secrets['app_secret']}"}
    monkeypatch.setattr(shop.app.cloud, "configure", configure)
    sent = []
    monkeypatch.setattr(shop.app.deps.chat, "send", lambda text: sent.append(text) or 1)

    # When an environment is made
    shop.publish("env.requested", env="perf", production="shop")

    # Then the endpoints it publishes keep their names and what is not secret, and mask the credentials
    ready = shop.events("env.ready")[0].data["endpoints"]
    assert ready["db_url"] == "postgresql://app:[redacted]@db.internal/perf"
    assert ready["bootstrap"] == "token [redacted]" and ready["admin_url"] == "https://perf.example/admin"
    stored = shop.app.registry.living("perf").endpoints
    everywhere = json.dumps([ready, stored]) + "\n".join(sent)
    assert len(made) == 2 and sent and not [name for name, value in made.items() if value in everywhere]
