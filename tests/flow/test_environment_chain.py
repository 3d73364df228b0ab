"""env.requested -> snapshot -> clone -> configure -> env.ready, and back down, on the embedded bus."""
import configparser
import json
import sqlite3
from pathlib import Path

import pytest

from core.registry import FAILED, READY, REQUESTED, SNAPSHOTTING
from tests.flow.conftest import CloudOverride, content_digest, tree_digest


def customers(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, email, phone FROM customers ORDER BY id").fetchall()


def everything_in(db: Path) -> str:
    """Every value of every table, as text, to search for leaks."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_the_chain_makes_a_working_clone_and_leaves_production_untouched(shop):
    before = tree_digest(shop.production)

    request = shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)

    # The chain ran to env.ready, every event in the request's chain
    chain = [e.type for e in shop.events(correlation_id=request.id)]
    assert chain[:4] == ["env.requested", "snapshot.done", "stack.ready", "env.ready"]
    env = shop.app.registry.living("perf-test")
    assert env.state == READY and env.expires_at is not None
    root = Path(env.endpoints["root"])

    # Its config points at its own database and URL, never production's
    ini = configparser.ConfigParser()
    ini.read(root / "config/app.ini")
    assert Path(ini["database"]["path"]) == root / "data/shop.db"
    assert ini["app"]["base_url"] == env.endpoints["base_url"] == "http://perf-test.localhost"
    dotenv = (root / ".env").read_text()
    assert str(shop.production) not in dotenv and "https://shop.example.com" not in dotenv
    settings = json.loads((root / "config/settings.json").read_text())
    assert settings["mail"]["enabled"] is False
    # fresh credentials, not production's
    prod_env = dict(l.split("=", 1) for l in (shop.production / ".env").read_text().splitlines() if "=" in l)
    clone_env = dict(l.split("=", 1) for l in dotenv.splitlines() if "=" in l)
    assert clone_env["DB_PASSWORD"] != prod_env["DB_PASSWORD"]

    # Its crontab is disabled
    assert all(l.startswith("#") or not l.strip() or "=" in l.split()[0]
               for l in (root / "crontab").read_text().splitlines())

    # No production email, name or phone anywhere in its database
    leaked = everything_in(root / "data/shop.db")
    for name, email, phone in customers(shop.production / "data/shop.db"):
        assert email not in leaked and name not in leaked and phone not in leaked
    assert len(customers(root / "data/shop.db")) == len(customers(shop.production / "data/shop.db"))

    # Production is byte-identical
    assert tree_digest(shop.production) == before


def test_replaying_the_request_or_reusing_a_living_name_makes_no_second_environment(shop):
    first = shop.publish("env.requested", env="perf-test", production="shop")
    envs_dir = shop.app.config.state_dir / "local" / "envs"
    made = sorted(p.name for p in envs_dir.iterdir())

    # the same event again (same id and source) ...
    from core.broker import event_message
    shop.app.broker.publish([event_message(first)])
    shop.app.broker.run_until_idle()
    # ... and a new request for the same living name
    shop.publish("env.requested", env="perf-test", production="shop")

    assert sorted(p.name for p in envs_dir.iterdir()) == made
    assert [e.name for e in shop.app.registry.all(include_ended=True)] == ["perf-test"]
    assert len(shop.events("env.ready")) == 1


def test_an_unknown_production_is_refused_at_once_with_the_reason(shop):
    request = shop.publish("env.requested", env="perf-test", production="nosuch")

    # Parked at once, the environment registered as failed with the reason, and the requester told
    assert shop.worker.stats.counts["parked:snapshot"] == 1
    env = shop.app.registry.latest("perf-test")
    assert env.state == FAILED and env.request_id == f"test/{request.id}"
    assert "production 'nosuch' is not described in doppel.yaml (productions: shop)" in env.reason
    (failed,) = shop.events("env.failed")
    assert failed.correlation_id == request.id and failed.data["step"] == "snapshot"
    assert failed.data["reason"].startswith("production 'nosuch' is not described")
    assert shop.app.registry.living("perf-test") is None  # the name stays free


def test_a_ttl_over_the_configured_maximum_is_refused_with_the_reason(tmp_path, monkeypatch):
    from tests.flow.conftest import Shop
    shop = Shop(tmp_path, environments={"max_ttl": "2d"})
    try:
        shop.publish("env.requested", env="long-test", production="shop", ttl_seconds=3 * 86400)
        shop.publish("env.requested", env="short-test", production="shop", ttl_seconds=2 * 86400)

        (failed,) = shop.events("env.failed")
        assert failed.data["env"] == "long-test"
        assert "a TTL of 3d is longer than this Doppel allows (2d, environments.max_ttl" in failed.data["reason"]
        assert shop.app.registry.latest("long-test").state == FAILED
        assert shop.app.registry.latest("short-test").state == READY
        assert shop.app.cloud.find_tagged({"doppel-env": "long-test"}) == []
    finally:
        shop.app.close()


def test_a_request_for_a_living_name_is_answered_with_env_failed_and_the_living_one_is_untouched(shop):
    from tests.support.gateway import ReplyCatcher
    catcher = ReplyCatcher()
    try:
        first = shop.publish("env.requested", env="perf-test", production="shop")
        second = shop.publish("env.requested", env="perf-test", production="shop", reply_to=catcher.url)
        (reply,) = catcher.wait_for(1)
    finally:
        catcher.close()

    (failed,) = shop.events("env.failed")
    assert failed.correlation_id == second.id and failed.data["request"] == f"test/{second.id}"
    assert "the name perf-test is taken by a living environment (ready" in failed.data["reason"]
    assert failed.data["reply_to"] == catcher.url  # no registry row to find it in
    assert "the name perf-test is taken" in reply["text"]
    living = shop.app.registry.living("perf-test")
    assert living.state == READY and living.request_id == f"test/{first.id}"
    assert [e.name for e in shop.app.registry.all(include_ended=True)] == ["perf-test"]


class ConfigureTimesOut(CloudOverride):
    """The real local driver, except that configure always times out (a cloud API that hangs)."""

    def configure(self, env, stack, policy, secrets):
        raise TimeoutError(f"configuring {env}: the cloud API did not answer in 60 s")


def assert_nothing_left(shop, name):
    state = shop.app.config.state_dir / "local"
    assert list((state / "envs").iterdir()) == []
    assert list((state / "snapshots").iterdir()) == []
    assert shop.app.cloud.get_dns(f"{name}.localhost") is None
    assert shop.app.cloud.find_tagged({"doppel-env": name}) == []
    assert shop.app.registry.living(name) is None  # the name is free again


def test_a_transient_failure_at_configure_is_retried_then_compensated(tmp_path, monkeypatch):
    from tests.flow.conftest import Shop
    shop = Shop(tmp_path)
    shop.app.deps.cloud = ConfigureTimesOut(shop.app.cloud)
    try:
        request = shop.publish("env.requested", env="perf-test", production="shop")

        assert shop.worker.stats.counts["retried:configure"] == 2  # 3 attempts in all
        (failed,) = shop.events("env.failed")
        assert failed.correlation_id == request.id and failed.data["step"] == "configure"
        assert "did not answer in 60 s" in failed.data["reason"]
        env = shop.app.registry.latest("perf-test")
        assert env.state == FAILED and "did not answer" in env.reason
        assert_nothing_left(shop, "perf-test")
    finally:
        shop.app.close()


def test_a_permanent_failure_at_configure_is_compensated_at_once(tmp_path, monkeypatch):
    from tests.flow.conftest import Shop
    # Given a clone policy that cannot be applied: it anonymises a table production does not have
    shop = Shop(tmp_path)
    policy = shop.app.config["productions"]["shop"]["clone"]
    policy["anonymise"].append({"database": "main", "table": "loyalty_cards", "column": "holder",
                                "method": "name"})
    try:
        request = shop.publish("env.requested", env="perf-test", production="shop")

        # Then configure gives up at once (retrying cannot create a table); env.failed carries the reason
        assert shop.worker.stats.counts["retried:configure"] == 0
        (failed,) = shop.events("env.failed")
        assert failed.correlation_id == request.id and failed.data["step"] == "configure"
        assert "loyalty_cards" in failed.data["reason"]
        # the registry says what happened
        env = shop.app.registry.latest("perf-test")
        assert env.state == FAILED and "loyalty_cards" in env.reason
        # and nothing is left: no environment directory, snapshot, DNS record or tagged resource
        assert_nothing_left(shop, "perf-test")
    finally:
        shop.app.close()


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_ttl_expiry_backs_up_before_deleting_and_the_backup_restores_the_environment(shop, tmp_path):
    # Given a ready environment with data of its own
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=60)
    env = shop.app.registry.living("perf-test")
    root = Path(env.endpoints["root"])
    with sqlite3.connect(root / "data/shop.db") as conn:
        conn.execute("INSERT INTO orders (customer_id, total_cents, created_at) VALUES (1, 4242, '2026-11-22')")
    expected = content_digest(root)

    # When its TTL expires
    expired = shop.publish("env.expired", env="perf-test", reason="ttl")

    # Then a backup was made before the deletion, and the registry says deleted
    chain = [e.type for e in shop.events(correlation_id=expired.id)]
    assert chain.index("backup.done") < chain.index("env.deleted")
    ended = shop.app.registry.latest("perf-test")
    assert ended.state == "deleted" and not root.exists()
    (backup,) = shop.app.backups.list("perf-test")
    assert ended.reason == f"backed up as {backup.id}"

    # and that backup holds the environment as it was, its own rows included
    restored = tmp_path / "restored"
    shop.app.backups.restore(backup.id, restored)
    assert content_digest(restored) == expected
    with sqlite3.connect(restored / "data/shop.db") as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE total_cents = 4242").fetchone() == (1,)


def test_a_failed_pre_deletion_backup_deletes_nothing(shop):
    shop.publish("env.requested", env="perf-test", production="shop")
    env = shop.app.registry.living("perf-test")

    class BrokenStore:
        name = "broken"

        def __getattr__(self, _name):
            raise ConnectionError("object store unreachable")

    shop.app.backups.store = BrokenStore()
    shop.publish("env.expired", env="perf-test", reason="ttl")

    (failed,) = shop.events("backup.failed")
    assert "object store unreachable" in failed.data["reason"]
    still = shop.app.registry.living("perf-test")
    assert still is not None and still.state == "expiring"
    assert Path(env.endpoints["root"]).exists() and shop.events("env.deleted") == []


def test_a_failed_request_replayed_after_the_fix_tries_the_same_environment_again(shop):
    # Breaks caught: the move back to requested, or the move on to snapshotting, recorded without the event that
    # made it, or without saying it is a replay after failure
    # Given production's directory was away when the request came: parked, and the env failed
    moved = shop.production.with_name("shop.moved")
    shop.production.rename(moved)
    request = shop.publish("env.requested", env="perf-test", production="shop")
    assert shop.app.registry.latest("perf-test").state == FAILED

    # When it is back and the parked message is replayed
    moved.rename(shop.production)
    shop.replay_parked("snapshot")

    # Then the same environment is made, and its history tells the story
    env = shop.app.registry.latest("perf-test")
    assert env.state == READY and env.request_id.endswith(request.id)
    assert len(shop.app.registry.all(include_ended=True)) == 1
    states = [t.to_state for t in shop.app.registry.transitions(env)]
    assert states == ["requested", "snapshotting", "failed", "requested", "snapshotting", "cloning",
                      "configuring", "ready"]
    moves = [(t.from_state, t.to_state, t.event_id, t.reason) for t in shop.app.registry.transitions(env)]
    assert moves[1][:3] == (REQUESTED, SNAPSHOTTING, request.id)
    assert moves[3:5] == [(FAILED, REQUESTED, request.id, "replayed after failure"),
                          (REQUESTED, SNAPSHOTTING, request.id, None)]


def test_a_failed_request_replayed_once_its_name_is_taken_again_leaves_both_as_they_are(shop):
    # Breaks caught: the failed environment brought back to life beside the living one now holding its name (the
    # registry's look-up for that holder asked of no name, or the failure test and the holder's joined by or)
    moved = shop.production.with_name("shop.moved")
    shop.production.rename(moved)
    request = shop.publish("env.requested", env="perf-test", production="shop")
    moved.rename(shop.production)
    shop.publish("env.requested", env="perf-test", production="shop")
    holder, failed = shop.app.registry.living("perf-test"), shop.app.registry.by_request(f"test/{request.id}")
    history, failed_history = shop.app.registry.transitions(holder), shop.app.registry.transitions(failed)

    shop.replay_parked("snapshot")

    assert shop.app.registry.by_request(f"test/{request.id}") == failed
    assert shop.app.registry.transitions(failed) == failed_history
    assert shop.app.registry.living("perf-test") == holder and shop.app.registry.transitions(holder) == history
    assert len(shop.events("env.ready")) == 1 and len(shop.events("env.failed")) == 1


def half_made(shop, name: str, *, builder_alive: bool = False):
    """An environment left cloning: its snapshot taken, its stack half-built (by a builder that died, unless
    `builder_alive`), its clone claim run out, its message lost."""
    import subprocess
    import sys

    from clouds.local import state
    from core.cloud import CREATE_IN_PROGRESS, Stack, env_tags
    from core.registry import CLONING, SNAPSHOTTING
    app = shop.app
    env, _ = app.registry.request(name=name, request_id=f"test/{name}", production="shop", correlation_id=name)
    env = app.registry.move(app.registry.move(env, SNAPSHOTTING), CLONING)
    app.cloud.snapshot("shop", name, env.request_id)
    partial = app.config.state_dir / "local" / "envs" / f"{name}.partial"
    (partial / "root").mkdir(parents=True)
    tags = env_tags(name, env.request_id, **{"doppel-production": "shop"})
    stack = Stack(id=f"stack-{name}", name=name, env=name, status=CREATE_IN_PROGRESS, tags=tags)
    state.write_json(partial / "stack.json", {"stack": stack.to_dict(), "production": "shop", "parameters": {}})
    state.write_json(partial / "tags.json", tags)
    if builder_alive:
        owner, _cancel = state.start_build()
    else:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        owner = {"pid": int(dead.stdout), "token": "gone"}
    state.write_json(partial / "owner.json", owner)
    app.ledger.claim("clone", env.request_id, "dead-worker", -60)
    return env


def hours_later(shop, hours: float):
    from datetime import datetime, timedelta, timezone
    later = datetime.now(timezone.utc) + timedelta(hours=hours)
    shop.app.deps.clock = lambda: later


def test_an_environment_left_half_made_is_failed_and_cleaned_up_by_the_sweep(shop):
    # Given an environment left cloning by a worker that died, its message lost, three hours ago
    env = half_made(shop, "stuck-one")
    hours_later(shop, 3)

    # When a worker sweeps
    shop.worker.sweep()
    shop.app.broker.run_until_idle(timeout=60)

    # Then it is failed with the reason, its requester hears it, and nothing of it is left, half-made or whole
    ended = shop.app.registry.latest("stuck-one")
    assert ended.state == FAILED and "stuck cloning for 3 h" in ended.reason
    (failed,) = shop.events("env.failed")
    assert failed.data["request"] == env.request_id and failed.data["step"] == "clone"
    assert failed.correlation_id == "stuck-one"
    assert_nothing_left(shop, "stuck-one")
    # ... and its lost message, turning up now, makes nothing
    shop.publish("snapshot.done", env="stuck-one", production="shop", request=env.request_id,
                 snapshot={"id": "snap-x", "production": "shop", "env": "stuck-one", "status": "COMPLETE",
                           "created": "2026-01-01T00:00:00+00:00"})
    assert_nothing_left(shop, "stuck-one")
    assert shop.app.registry.latest("stuck-one").state == FAILED


def test_the_sweep_leaves_an_environment_that_is_young_held_by_a_worker_or_still_being_built(shop):
    # Given three environments left half-made, one of them held by a live worker, one still being built
    half_made(shop, "left-one")
    held = half_made(shop, "held-one")
    shop.app.ledger.claim("configure", held.request_id, "live-worker", 600)
    half_made(shop, "building-one", builder_alive=True)

    # When a worker sweeps an hour later, within the bound, and again three hours later, past it
    hours_later(shop, 1)
    shop.worker.sweep()
    shop.app.broker.run_until_idle(timeout=60)
    assert [e.state for e in shop.app.registry.all()] == ["cloning"] * 3

    hours_later(shop, 3)
    shop.worker.sweep()
    shop.app.broker.run_until_idle(timeout=60)

    # Then only the one nobody works on is failed
    assert {e.name: e.state for e in shop.app.registry.all(include_ended=True)} == {
        "left-one": FAILED, "held-one": "cloning", "building-one": "cloning"}
    assert [e.data["env"] for e in shop.events("env.failed")] == ["left-one"]


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_a_step_whose_workers_kept_dying_is_abandoned_compensated_and_can_be_replayed(shop):
    from bus import topology
    from bus.ledger import MAX_TAKEOVERS
    from core.broker import event_message
    from core.chain import request_id
    from doppel.cli.bus import _replay, build_event
    # Given a request whose clone took down each worker that claimed it (every claim ran out)
    request = build_event("env.requested", {"env": "crashy", "production": "shop"}, source="test")
    for n in range(MAX_TAKEOVERS + 1):
        shop.app.ledger.claim("clone", request_id(request), f"killed-{n}", -1)

    # When its chain reaches clone again
    shop.app.broker.publish([event_message(request)])
    shop.app.broker.run_until_idle(timeout=60)

    # Then clone does not run it: the environment is failed with why, cleaned up, and the message parked
    env = shop.app.registry.latest("crashy")
    assert env.state == FAILED and "abandoned" in env.reason
    assert [e.data["step"] for e in shop.events("env.failed")] == ["clone"]
    assert_nothing_left(shop, "crashy")
    parked = shop.app.broker.get(topology.dead_queue("clone"))
    assert parked.message.headers["x-doppel-error-kind"] == "abandoned"

    # ... and `doppel dlq replay` lets it be claimed again (here it finds its environment failed: a no-op)
    _replay(shop.app, "clone", parked)
    shop.app.broker.run_until_idle(timeout=60)
    (entry,) = [e for e in shop.app.ledger.entries() if e.function == "clone"]
    assert entry.status == "done" and shop.app.broker.depth(topology.dead_queue("clone")) == 0


def test_configure_run_again_after_the_move_to_ready_says_ready_again_with_the_same_event(shop):
    import functions.configure as configure
    from schemas.envelope import Event
    # Given an environment made ready, whose worker (say) died before env.ready left it
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)
    (stack_ready,) = shop.events("stack.ready")
    (sent,) = shop.events("env.ready")
    event = Event(type="stack.ready", source=stack_ready.source, data=stack_ready.data, id=stack_ready.id,
                  time=stack_ready.time, correlationid=stack_ready.correlation_id)  # as it would come again

    # When configure runs again on the same stack.ready (its claim taken over)
    (again,) = configure.handle(event, shop.app.deps.for_event(event, "configure", stack_ready.data["request"]))

    # Then it says ready again, as the same event, with the same endpoints, and changes nothing
    assert (again.type, again.id, again.data["endpoints"]) == ("env.ready", sent.id, sent.data["endpoints"])
    assert shop.app.registry.living("perf-test").state == READY
