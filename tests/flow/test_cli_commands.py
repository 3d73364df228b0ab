"""Commands of the CLI on the embedded bus, run in this process as `doppel -c doppel.yaml ...` would run them:
env show|delete|expire, backup show|restore|sync|prune, dlq show|purge (parked messages kept on disk
between commands), schedule list|pause|resume|run-now, worker --only."""
import json

import pytest
import yaml

import functions
from clouds.local.sample import make_sample_production
from core.registry import DELETED, READY
from doppel.app import App
from doppel.cli import main


@pytest.fixture
def doppel(tmp_path, monkeypatch, capsys):
    """`doppel ARGS...` against a doppel.yaml with the sample production and a nightly backup job: its exit code,
    what it printed and what it said on stderr."""
    for name in ("DOPPEL_AMQP_URL", "DOPPEL_CONFIG"):  # DOPPEL_DB_URL: the state_db_url fixture's
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"),
        "productions": {"shop": make_sample_production(tmp_path / "production" / "shop")},
        "backups": {"retention": {"keep_last": 1, "daily": 0, "weekly": 0, "monthly": 0}},
        "schedules": [{"id": "nightly-backup", "cron": "0 2 * * *", "timezone": "UTC", "type": "backup.due",
                       "data": {"env": "shop"}, "tags": ["backups"]}]}))

    def run(*args: str):
        capsys.readouterr()
        code = main(["-c", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err
    run.config, run.dir = config, tmp_path
    return run


def app_of(doppel) -> App:
    return App.load(str(doppel.config))


def test_env_show_delete_and_expire(doppel):
    assert doppel("env", "create", "perf-test", "--from", "shop")[0] == 0
    assert doppel("env", "create", "ttl-test", "--from", "shop")[0] == 0

    code, out, _ = doppel("env", "show", "perf-test")
    assert code == 0 and out.startswith(f"perf-test: {READY}") and "endpoint    root: " in out
    assert [line.split("->")[1].split()[0] for line in out.splitlines() if "->" in line] == [
        "requested", "snapshotting", "cloning", "configuring", "ready"]

    code, out, err = doppel("env", "delete", "perf-test")
    assert code == 0 and out.startswith("perf-test is deleted: backed up as ")
    assert "backing up, then deleting perf-test" in err
    code, out, _ = doppel("env", "expire", "ttl-test")
    assert code == 0 and out.startswith("ttl-test is deleted: backed up as ")

    app = app_of(doppel)
    try:
        for name, reason in (("perf-test", "manual"), ("ttl-test", "ttl")):
            assert app.registry.latest(name).state == DELETED and len(app.backups.list(name)) == 1
            (expired,) = [e for e in app.audit.events(event_type="env.expired") if e.data["env"] == name]
            assert expired.data["reason"] == reason
    finally:
        app.close()

    code, _, err = doppel("env", "delete", "perf-test")
    assert code != 0 and "no living environment 'perf-test'" in err and "Traceback" not in err
    code, _, err = doppel("env", "show", "never-made")
    assert code != 0 and "no environment 'never-made' was ever requested" in err


def test_backup_show_restore_sync_and_prune(doppel):
    assert doppel("backup", "now", "shop")[0] == 0
    app = app_of(doppel)
    (first,) = [e.id for e in app.backups.list("shop")]
    app.close()

    code, out, _ = doppel("backup", "show", first)
    assert code == 0 and first in out and "sha256" in out

    code, _, _ = doppel("backup", "restore", first, "--to", "restored", "--production", "shop")
    app = app_of(doppel)
    try:
        root = app.cloud.restore_target("restored", production="shop")
        assert code == 0 and (root / "data/shop.db").exists() and (root / "app/index.html").exists()
        # the catalogue forgets the backup; sync finds it again in the store's manifests
        app.catalogue.deleted([first])
        assert [e.id for e in app.backups.list("shop")] == []
    finally:
        app.close()
    code, _, _ = doppel("backup", "sync")
    app = app_of(doppel)
    assert code == 0 and [e.id for e in app.backups.list("shop")] == [first]
    app.close()

    # a second backup: its own prune (keep_last 1) removes the first; `backup prune` then has nothing left to do
    assert doppel("backup", "now", "shop")[0] == 0
    app = app_of(doppel)
    (second,) = [e.id for e in app.backups.list("shop")]
    app.close()
    assert second != first
    code, _, _ = doppel("backup", "prune", "shop")
    app = app_of(doppel)
    assert code == 0 and [e.id for e in app.backups.list("shop")] == [second]
    app.close()


def test_backup_prune_deletes_what_the_policy_does_not_keep_and_dry_run_deletes_nothing(doppel):
    from clouds.backups import list_backups
    # Given two backups made without the bus (no prune function ran), where the policy keeps the last one
    app = app_of(doppel)
    try:
        made = [app.backups.back_up("shop", app.cloud.backup_source("shop"), reason="manual").backup_id
                for _ in range(2)]
    finally:
        app.close()

    # When pruning is asked for with --dry-run, then for real
    dry = doppel("backup", "prune", "shop", "--dry-run")
    app = app_of(doppel)
    try:
        after_dry = [e.id for e in app.backups.list("shop")]
    finally:
        app.close()
    code, out, err = doppel("backup", "prune", "shop")

    # Then --dry-run says what it would delete and deletes nothing; the real one deletes the oldest, from the
    # catalogue and from the store
    assert dry[0] == 0 and dry[1].splitlines() == [f"would delete {made[0]}"] and sorted(after_dry) == sorted(made)
    assert code == 0 and out.splitlines() == [f"deleted {made[0]}"] and "1 deleted, 1 kept" in err
    app = app_of(doppel)
    try:
        assert [e.id for e in app.backups.list("shop")] == [made[1]]
        assert [m.backup_id for m in list_backups(app.backups.store, "shop")] == [made[1]]
    finally:
        app.close()


def test_parked_messages_are_kept_between_commands_shown_and_purged(doppel):
    # Given a backup that fails for good (no such environment): parked by its function, in this process
    code, out, _ = doppel("publish", "backup.due", "--data", '{"env": "nosuch"}')
    message_id = out.strip()
    assert code == 0

    # Then another command (another process, as far as the bus is concerned) lists and shows it
    code, out, err = doppel("dlq", "list")
    (header, line) = out.splitlines()
    assert code == 0 and header.split()[:4] == ["MESSAGE", "FUNCTION", "TYPE", "KIND"]
    assert line.split()[:4] == [message_id, "backup", "backup.due", "permanent"]
    assert "'nosuch' is neither a production nor a complete environment" in line and "1 parked message(s)" in err
    code, out, _ = doppel("dlq", "show", message_id)
    assert code == 0 and "'nosuch' is neither a production" in out and '"env": "nosuch"' in out

    # When they are purged, they are gone for good
    code, _, _ = doppel("dlq", "purge", "--function", "backup", "--yes")
    assert code == 0
    code, out, err = doppel("dlq", "list")
    assert code == 0 and out == "" and message_id not in err


def test_schedule_list_pause_resume_and_run_now(doppel):
    code, out, _ = doppel("schedule", "list", "-o", "json")
    (job,) = [entry for entry in json.loads(out) if entry["job"] == "nightly-backup"]
    assert code == 0 and not job["paused"]

    assert doppel("schedule", "pause", "tag:backups", "--reason", "maintenance")[0] == 0
    code, out, _ = doppel("schedule", "list", "-o", "json")
    (job,) = [entry for entry in json.loads(out) if entry["job"] == "nightly-backup"]
    assert job["paused"] and "maintenance" in json.dumps(job)
    code, _, err = doppel("schedule", "run-now", "nightly-backup")
    assert code != 0 and "nightly-backup is paused" in err and "--force" in err

    assert doppel("schedule", "resume", "tag:backups")[0] == 0
    code, out, _ = doppel("schedule", "run-now", "nightly-backup")
    assert code == 0
    app = app_of(doppel)
    try:
        (due,) = app.audit.events(event_type="backup.due")
        assert due.id == out.strip() and due.data["env"] == "shop"
        assert len(app.backups.list("shop")) == 1  # the embedded bus ran the backup it asked for
    finally:
        app.close()
    code, _, err = doppel("schedule", "run-now", "no-such-job")
    assert code == 2 and "configured jobs: nightly-backup" in err


def test_worker_only_serves_the_named_functions_and_refuses_unknown_names(doppel):
    assert [f.NAME for f in functions.select("snapshot, notify")] == ["snapshot", "notify"]
    assert functions.select(None) == functions.FUNCTIONS
    with pytest.raises(ValueError, match="unknown function.*nosuch.*known: audit, backup"):
        functions.select("snapshot,nosuch")
    code, _, err = doppel("worker", "--only", "nosuch")
    assert code != 0 and "unknown function(s) nosuch" in err and "Traceback" not in err


def test_doppel_worker_only_serves_the_named_functions(doppel, monkeypatch):
    from core.broker import event_message
    from doppel import roles
    from doppel.cli.common import build_event
    seen = {}

    def signalled_once_idle(stop):
        """Stands for the SIGTERM that stops `doppel worker`, once the worker handled what reached its bus."""
        app = seen["app"]
        app.broker.publish([event_message(build_event("backup.due", {"env": "shop"})),
                            event_message(build_event("env.requested", {"env": "perf-test", "production": "shop"}))])
        app.broker.run_until_idle(timeout=60)
        seen["backups"] = [e.id for e in app.backups.list("shop")]
        seen["requested"] = app.registry.latest("perf-test")

    worker = App.worker

    def keep_app(app, functions):
        seen["app"] = app
        return worker(app, functions)
    monkeypatch.setattr(App, "worker", keep_app)
    monkeypatch.setattr(roles, "run_until_signalled", signalled_once_idle)

    # When `doppel worker --only backup,prune` runs, and a backup and an environment are asked of it
    code, _, err = doppel("worker", "--only", "backup,prune")

    # Then it backed up, and nothing served env.requested (snapshot would have registered the environment)
    assert code == 0, err
    assert len(seen["backups"]) == 1 and seen["requested"] is None
