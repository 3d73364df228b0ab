"""What an environment logged outlives it: collected at teardown (after its expiry backup), kept in the backup
store with the secrets Doppel generated for it masked, read back by `doppel env logs`, and pruned after their own
retention. The expiry is the scheduler's own (its firer, past the TTL), the commands are the CLI's."""
from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

import functions
from clouds.local.sample import make_sample_production
from core.registry import DELETED, READY
from doppel.app import App
from doppel.cli import main
from doppel.config import parse_config
from doppel.roles import start_gateway
from gateway import status_page
from scheduler.firing import Emitter, Firer
from tests.support.gateway import call

LOGS = {"kind": "logs", "name": "app", "paths": ["app/logs/*.log"]}


class Logged:
    """The sample production with a logs component, an embedded Doppel serving every function, and its CLI."""

    def __init__(self, tmp_path: Path, capsys):
        production = make_sample_production(tmp_path / "production" / "shop")
        production["components"].append(LOGS)
        self.document = {"state_dir": str(tmp_path / "state"), "productions": {"shop": production},
                         "bus": {"retry": {"attempts": 3, "first_delay": "200ms"}},
                         "gateway": {"port": 0, "status": {"public": True}}}
        self.config = tmp_path / "doppel.yaml"
        self.config.write_text(yaml.safe_dump(self.document))
        self.app = App(parse_config(self.document, self.config), role="test", fast_forward=True)
        self.app.worker(functions.FUNCTIONS).start()
        self.capsys = capsys

    def publish(self, event_type, **data):
        from core.broker import event_message
        from doppel.cli.common import build_event
        self.app.broker.publish([event_message(build_event(event_type, data, source="test"))])
        self.app.broker.run_until_idle(timeout=120)

    def ready(self, name: str):
        self.publish("env.requested", env=name, production="shop", ttl_seconds=3600)
        env = self.app.registry.living(name)
        assert env is not None and env.state == READY, env
        return env

    def let_ttl_run_out(self, env) -> None:
        """The scheduler's expiry sweep, on a clock just past the env's TTL, then the chain it starts."""
        firer = Firer(control=self.app.deps.scheduler, registry=self.app.registry,
                      emitter=Emitter(self.app.broker, self.app.engine), may_fire=lambda: True,
                      clock=lambda: env.expires_at + timedelta(seconds=1))
        assert firer.sweep_expired() == 1
        self.app.broker.run_until_idle(timeout=120)

    def cli(self, *args: str):
        self.capsys.readouterr()
        code = main(["-c", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def logged(tmp_path, monkeypatch, capsys):
    for name in ("DOPPEL_DB_URL", "DOPPEL_AMQP_URL", "DOPPEL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    instance = Logged(tmp_path, capsys)
    yield instance
    instance.app.close()


def generated_password(root: Path) -> str:
    """The DB_PASSWORD configure generated for the environment (clone.secrets), as its .env holds it."""
    line = next(line for line in (root / ".env").read_text().splitlines() if line.startswith("DB_PASSWORD="))
    return line.split("=", 1)[1].strip().strip('"')


def test_what_an_environment_wrote_is_found_after_its_ttl_deleted_it_with_its_secrets_masked(logged):
    # Given a ready environment that writes to its log files, one line holding a secret generated for it
    env = logged.ready("perf-test")
    root = Path(env.endpoints["root"])
    password = generated_password(root)
    assert len(password) >= 20
    (root / "app" / "logs").mkdir(parents=True, exist_ok=True)
    (root / "app" / "logs" / "app.log").write_text(
        "2026-12-02T10:00:00Z INFO order 4711 paid by card\n"
        f"2026-12-02T10:00:01Z DEBUG connecting to db with password={password} ok\n")

    # While it lives, its logs are read from it
    code, out, _ = logged.cli("env", "logs", "perf-test", "--grep", "order 4711")
    assert code == 0 and out == "app/logs/app.log: 2026-12-02T10:00:00Z INFO order 4711 paid by card\n"

    # When its TTL runs out and the scheduler expires it (backup, then teardown)
    logged.let_ttl_run_out(env)

    # Then it is deleted and its directory is gone
    gone = logged.app.registry.latest("perf-test")
    assert gone.state == DELETED and "logs kept until" in gone.reason
    assert not root.exists() and not (logged.app.cloud.state_dir / "envs" / "perf-test").exists()

    # But `doppel env logs --grep` finds the line it wrote, from the store
    code, out, err = logged.cli("env", "logs", "perf-test", "--grep", "order 4711")
    assert code == 0, err
    assert out == "app/logs/app.log: 2026-12-02T10:00:00Z INFO order 4711 paid by card\n"
    assert "kept until" in err
    # And a line holding its generated password prints with it masked
    code, out, _ = logged.cli("env", "logs", "perf-test", "--grep", "connecting")
    assert code == 0 and password not in out
    assert out == "app/logs/app.log: 2026-12-02T10:00:01Z DEBUG connecting to db with password=[redacted] ok\n"
    # And the store never held it
    (kept,) = logged.app.logs.logbook.kept("perf-test")
    archive = b"".join(logged.app.logs.store.get_stream(kept.key + "logs.tar.gz"))
    assert b"order 4711" in gzip.decompress(archive) and password.encode() not in gzip.decompress(archive)
    described = logged.app.logs.describe(kept)
    assert described["size"] == len(archive) and described["files"][0]["lines"] == 2
    assert described["span"]["from"] and described["span"]["to"]
    # A line it did not write is not found (exit 1, like grep)
    assert logged.cli("env", "logs", "perf-test", "--grep", "never written")[0] == 1

    # And `env show` and the status page say its logs are kept, and until when
    code, out, _ = logged.cli("env", "show", "perf-test")
    until = f"{kept.kept_until:%Y-%m-%d %H:%M}"
    assert code == 0 and "logs        kept until" in out and until in out
    page = status_page.render(logged.app)
    assert "perf-test" in page.split('id="kept-logs"')[1].split("</table>")[0] and until in page
    server = start_gateway(logged.app, functions.FUNCTIONS)
    try:
        answer = call(server.url, "GET", "/status/envs/perf-test")
    finally:
        server.stop()
    assert answer.status == 200 and answer.json["state"] == "deleted"
    assert answer.json["logs"]["files"] == 1 and answer.json["logs"]["kept_until"].startswith(
        f"{kept.kept_until:%Y-%m-%d %H:%M}")


def expire_with_logs(logged, name: str, clock) -> None:
    """An environment that wrote a line, expired with the log keeper's clock at `clock()`."""
    env = logged.ready(name)
    root = Path(env.endpoints["root"])
    (root / "app" / "logs").mkdir(parents=True, exist_ok=True)
    (root / "app" / "logs" / "app.log").write_text(f"{name} was here\n")
    real_clock, logged.app.logs.clock = logged.app.logs.clock, clock
    try:
        logged.let_ttl_run_out(env)
    finally:
        logged.app.logs.clock = real_clock


def forty_days_ago() -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=40)


def test_logs_past_their_retention_are_pruned_and_a_dry_run_only_says_which(logged):
    # Given an environment deleted now, and one deleted 40 days ago (the keeper's clock then); retention is 30 days
    expire_with_logs(logged, "new-run", logged.app.logs.clock)
    expire_with_logs(logged, "old-run", forty_days_ago)
    store = logged.app.logs.store
    (old_kept,) = logged.app.logs.logbook.kept("old-run")
    assert len(store.list(old_kept.key)) == 2

    # When a dry run is asked for, it names the old one only, and deletes nothing
    code, out, _ = logged.cli("env", "prune-logs", "--dry-run")
    assert code == 0 and out.startswith("would delete logs of old-run") and "new-run" not in out
    assert len(store.list(old_kept.key)) == 2
    assert logged.cli("env", "logs", "old-run")[1] == "app/logs/app.log: old-run was here\n"

    # Then pruning deletes the old one's logs from the store, and keeps the new one's
    code, out, _ = logged.cli("env", "prune-logs")
    assert code == 0 and out.startswith("deleted logs of old-run") and "new-run" not in out
    assert store.list(old_kept.key) == []
    code, _, err = logged.cli("env", "logs", "old-run")
    assert code == 1 and "no logs of old-run" in err
    assert logged.cli("env", "logs", "new-run")[1] == "app/logs/app.log: new-run was here\n"
    assert logged.cli("env", "prune-logs")[1] == ""

    # And the nightly backup's prune step prunes them too, with no command typed
    expire_with_logs(logged, "older-run", forty_days_ago)
    (older_kept,) = logged.app.logs.logbook.kept("older-run")
    logged.publish("backup.due", env="shop")
    assert store.list(older_kept.key) == [] and logged.app.logs.logbook.kept("older-run") == []
    assert [k.env for k in logged.app.logs.logbook.kept()] == ["new-run"]


def test_follow_prints_lines_as_the_environment_writes_them_and_stops_when_it_is_deleted(logged):
    import threading

    from tests.support.waiting import wait_for
    # Given a ready environment with a log file, followed by `doppel env logs -f`
    env = logged.ready("follow-me")
    log_file = Path(env.endpoints["root"]) / "app" / "logs" / "app.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("first line\n")
    logged.capsys.readouterr()
    printed, result = [], {}

    def follow():
        result["code"] = main(["-c", str(logged.config), "env", "logs", "follow-me", "-f", "--grep", "line"])

    def seen() -> list[str]:
        printed.extend(logged.capsys.readouterr().out.splitlines())
        return printed

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    wait_for(lambda: "app/logs/app.log: first line" in seen(), 60, "the first line followed")

    # When it writes more, then expires
    with log_file.open("a") as handle:
        handle.write("not matched\nsecond line\n")
    wait_for(lambda: "app/logs/app.log: second line" in seen(), 60, "the second line followed")
    logged.let_ttl_run_out(env)

    # Then each line was printed once, and following stopped with the environment
    follower.join(timeout=60)
    assert not follower.is_alive() and result["code"] == 0
    assert seen() == ["app/logs/app.log: first line", "app/logs/app.log: second line"]
