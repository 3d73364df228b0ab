"""Disaster recovery on the embedded bus: alarm -> failover -> failback, flapping, sync during a failover,
confirmation, and restore drills, on the sample production and the local driver's records file."""
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from clouds.backups import list_backups
from core import dr
from core.broker import event_message
from core.cloud import DnsRecord
from core.dr_state import FAILED_OVER, NORMAL, SYNCING
from doppel.cli.common import build_event
from functions import failover
from tests.flow.conftest import Shop, tree_digest

NAME, HOME, DR_ADDRESS = "shop.example.com", "127.0.0.10", "127.0.0.20"


def dr_policy(**overrides) -> dict:
    policy = {"target": {"env": "shop-dr"}, "alarms": ["shop-down"], "debounce": "10m",
              "dns": {"records": [{"name": NAME, "type": "A", "value": DR_ADDRESS, "ttl": 60}]}}
    return {"shop": {**policy, **overrides}}


@pytest.fixture
def dr_shop(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    shop = Shop(tmp_path, dr=dr_policy())
    shop.app.cloud.switch_dns(DnsRecord(NAME, "A", HOME, 300))
    yield shop
    shop.app.close()


def add_order(db: Path, cents: int) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:  # commit, then close: no WAL left behind
        conn.execute("INSERT INTO orders (customer_id, total_cents, created_at) VALUES (1, ?, '2026-11-22')",
                     (cents,))


def has_order(db: Path, cents: int) -> bool:
    with closing(sqlite3.connect(db)) as conn, conn:  # commit, then close: no WAL left behind
        return conn.execute("SELECT count(*) FROM orders WHERE total_cents = ?", (cents,)).fetchone()[0] == 1


def back_up(shop) -> str:
    before = {e.id for e in shop.app.backups.list("shop")}
    shop.publish("backup.due", env="shop")
    (new,) = [e.id for e in shop.app.backups.list("shop") if e.id not in before]
    return new


def alert(shop, previous="ok", current="alarm", alarm_id="a-shop-1"):
    return shop.publish("monitor.alert", alarm_id=alarm_id, alarm_name="shop-down", severity="critical",
                        previous=previous, current=current, reason="http 5xx above 50% for 3 periods")


def dr_root(shop) -> Path:
    return Path(shop.app.cloud.stack_status("shop-dr").outputs["root"])


def frozen_types(shop) -> set:
    return {t for p in shop.app.deps.scheduler.pauses() if p.selector.get("production") == ["shop"]
            or p.selector.get("production") == "shop" for t in p.selector["types"]}


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_an_alarm_fails_over_to_the_newest_backup_and_failback_brings_dr_writes_home(dr_shop):
    shop = dr_shop
    db = shop.production / "data/shop.db"
    # Given two backups, the newer holding an order the older does not, and one write after both
    back_up(shop)
    add_order(db, 1111)
    newest = back_up(shop)
    assert shop.app.backups.verify(newest).ok
    add_order(db, 2222)  # written after the last backup: lost by the failover (that is the RPO)

    # When the alarm fires
    alarm = alert(shop)

    # Then the DR copy serves the newest backup's data, the name points at it, sync and backups are frozen;
    # RPO is the newest backup's age when the alarm came (what was written since is lost)
    (done,) = shop.events("failover.done")
    rpo = (alarm.time - shop.app.catalogue.get(newest).created_at).total_seconds()
    assert done.data["backup_id"] == newest and rpo > 0 and done.data["rpo_seconds"] == pytest.approx(rpo, abs=1e-3)
    assert 0 < done.data["rto_seconds"] < (shop.app.deps.clock() - alarm.time).total_seconds()
    copy = dr_root(shop) / "data/shop.db"
    assert has_order(copy, 1111) and not has_order(copy, 2222)
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", DR_ADDRESS, 60)
    assert frozen_types(shop) == {"sync.due", "backup.due"}
    assert shop.app.dr_states.get("shop").state == FAILED_OVER
    assert done.data["endpoints"]["root"] == str(dr_root(shop))

    # When the DR copy takes an order, and production is failed back
    add_order(copy, 3333)
    shop.publish("failback.requested", production="shop")

    # Then production has it, the name points home again, the jobs run again
    (back,) = shop.events("failback.done")
    assert has_order(db, 3333) and has_order(db, 1111)
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)
    assert frozen_types(shop) == set()
    assert shop.app.dr_states.get("shop").state == NORMAL
    # and the failback's backup is production's newest; production's old tree (with order 2222) is kept aside
    assert shop.app.backups.newest("shop").id == back.data["backup_id"]
    # (and the store lists it, so `doppel backup sync`, retention and cleanup see it too)
    assert back.data["backup_id"] in [m.backup_id for m in list_backups(shop.app.backups.store, "shop")]
    (kept,) = shop.production.parent.glob(".shop.before-failback-*")
    assert has_order(kept / "data/shop.db", 2222)


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_flapping_and_repeated_alarms_make_one_failover(dr_shop):
    shop = dr_shop
    back_up(shop)

    first = alert(shop)
    alert(shop, previous="alarm", current="ok")
    alert(shop, previous="ok", current="alarm")          # flapped back inside the window
    alert(shop, previous="alarm", current="alarm")       # Aodh's repeat_actions
    from core.broker import event_message
    shop.app.broker.publish([event_message(first)])      # the same notification resent
    shop.app.broker.run_until_idle(timeout=60)

    assert len(shop.events("failover.done")) == 1
    assert shop.events("failover.failed") == []

    # After a failback, an alarm still inside the window of the first one is ignored too
    shop.publish("failback.requested", production="shop")
    alert(shop, alarm_id="a-shop-2")
    assert len(shop.events("failover.done")) == 1 and shop.app.dr_states.get("shop").state == NORMAL


def test_a_sync_during_a_failover_leaves_the_dr_copy_alone(dr_shop):
    shop = dr_shop
    back_up(shop)
    alert(shop)
    copy = dr_root(shop)
    add_order(copy / "data/shop.db", 4444)  # written in DR while failed over
    newer = shop.app.backups.back_up("shop", shop.app.cloud.backup_source("shop"), reason="manual")
    before = tree_digest(copy)

    shop.publish("sync.due", production="shop")

    (sync,) = shop.events("sync.done")
    assert sync.data["skipped"] == ("production shop is failed_over: the DR copy may hold data written since the "
                                    "failover; sync resumes after the failback")
    assert sync.data.get("backup_id") is None
    assert tree_digest(copy) == before and has_order(copy / "data/shop.db", 4444)
    assert newer.backup_id != shop.app.dr_states.get("shop").dr_backup_id


def test_a_sync_keeps_the_dr_copy_warm_and_the_failover_uses_it(dr_shop):
    shop = dr_shop
    first = back_up(shop)
    shop.publish("sync.due", production="shop")
    (sync,) = shop.events("sync.done")
    assert sync.data["backup_id"] == first and "skipped" not in sync.data
    copy = dr_root(shop)
    marker = copy / "app" / "warm-marker"
    marker.write_text("the sync's copy")  # the failover must not restore again when the copy holds the backup

    alert(shop)

    assert shop.events("failover.done")[0].data["backup_id"] == first and marker.exists()


def deliver_on_one_thread_until(shop, condition, deliveries: int = 40) -> None:
    """Deliver one batch at a time on one thread, as one worker thread would, until `condition()` holds: a
    handler that held its thread (sleeping while it waits) would hold this one, and the join says so."""
    errors = []

    def deliver():
        try:
            for _ in range(deliveries):
                if condition():
                    return
                shop.app.broker.run_until_idle(timeout=10, max_deliveries=1)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
    runner = threading.Thread(target=deliver, name="one-worker-thread", daemon=True)
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "a handler is holding the worker's thread"
    assert errors == [] and condition()


def test_a_failover_during_a_sync_is_deferred_without_holding_a_thread_and_goes_ahead_once_it_is_done(dr_shop):
    shop = dr_shop
    backup = back_up(shop)
    states, counts = shop.app.dr_states, shop.worker.stats.counts
    # Given a sync swapping the DR copy: it holds the syncing state, as functions/sync.py does
    assert states.move("shop", (NORMAL,), SYNCING, holder="a-sync-under-way")

    # When the alarm arrives, then a poll tick, and the worker comes back to the failover more times than a
    # message has attempts (3)
    alarm = build_event("monitor.alert", {"alarm_id": "a-shop-1", "alarm_name": "shop-down", "previous": "ok",
                                          "current": "alarm"}, source="test")
    tick = build_event("poll.tick", {}, source="test")
    shop.app.broker.publish([event_message(alarm), event_message(tick)])
    deliver_on_one_thread_until(shop, lambda: counts["deferred:failover"] > 3 and counts["handled:poll"] == 1)

    # Then the failover was deferred each time: nothing restored or switched, no attempt counted, nothing parked,
    # and the tick behind it was handled meanwhile
    assert shop.events("failover.done") == [] and shop.events("failover.failed") == []
    assert counts["retried:failover"] == 0 and counts["parked:failover"] == 0 and counts["handled:failover"] == 0
    assert states.get("shop").state == SYNCING and shop.app.cloud.get_dns(NAME).value == HOME
    assert shop.app.cloud.stack_status("shop-dr") is None

    # When the sync is done
    assert states.move("shop", (SYNCING,), NORMAL, holder=None)
    shop.app.broker.run_until_idle(timeout=60)

    # Then the failover goes ahead, answering the alarm
    (done,) = shop.events("failover.done")
    assert done.correlation_id == alarm.id and done.data["backup_id"] == backup
    assert shop.app.cloud.get_dns(NAME).value == DR_ADDRESS and states.get("shop").state == FAILED_OVER


def test_a_sync_silent_for_longer_than_the_wait_is_taken_for_dead_and_the_failover_goes_ahead(dr_shop, monkeypatch):
    shop = dr_shop
    back_up(shop)
    # Given a sync that began longer ago than a failover waits for one
    assert shop.app.dr_states.move("shop", (NORMAL,), SYNCING, holder="a-sync-that-died")
    monkeypatch.setattr(failover, "SYNC_WAIT_S", 0.0)

    # When the alarm arrives
    alert(shop)

    # Then the failover went ahead at once
    assert len(shop.events("failover.done")) == 1 and shop.worker.stats.counts["deferred:failover"] == 0
    assert shop.app.dr_states.get("shop").state == FAILED_OVER


def test_confirm_mode_waits_for_failover_confirmed(tmp_path, monkeypatch):
    shop = Shop(tmp_path, dr=dr_policy(decision="confirm"))
    try:
        back_up(shop)
        alert(shop)
        assert shop.events("failover.done") == [] and shop.app.dr_states.get("shop").state == "pending"
        assert shop.app.cloud.get_dns(NAME) is None

        shop.publish("failover.confirmed", production="shop")

        (done,) = shop.events("failover.done")
        assert shop.app.cloud.get_dns(NAME).value == DR_ADDRESS
        # RTO counts from the alarm, not from the confirmation
        alarm = shop.events("monitor.alert")[0]
        assert done.data["rto_seconds"] >= (shop.events("failover.confirmed")[0].time - alarm.time).total_seconds()
    finally:
        shop.app.close()


def test_no_backup_fails_the_failover_with_the_fix_and_gives_the_lock_back(dr_shop):
    shop = dr_shop
    alert(shop)
    (failed,) = shop.events("failover.failed")
    assert "no backup to restore" in failed.data["reason"] and "doppel backup now shop" in failed.data["reason"]
    assert shop.app.dr_states.get("shop").state == NORMAL and frozen_types(shop) == set()
    assert shop.app.cloud.get_dns(NAME).value == HOME


def test_a_drill_restores_verifies_and_tears_down_without_touching_dns(dr_shop):
    shop = dr_shop
    backup = back_up(shop)
    envs = shop.app.config.state_dir / "local" / "envs"
    before = sorted(p.name for p in envs.iterdir())

    created = shop.app.catalogue.get(backup).created_at
    age_before = (shop.app.deps.clock() - created).total_seconds()

    shop.publish("drill.due", production="shop")

    age_after = (shop.app.deps.clock() - created).total_seconds()
    (done,) = shop.events("drill.done")
    assert done.data["verified"] is True and done.data["backup_id"] == backup
    assert sorted(p.name for p in envs.iterdir()) == before  # the scratch environment is gone
    assert shop.app.cloud.get_dns(NAME).value == HOME
    assert shop.app.catalogue.get(backup).verify_ok is True
    (drill,) = shop.app.dr_states.drills("shop")
    # RPO: the backup's age when drilled
    assert drill.verified and drill.rto_seconds > 0 and 0 < age_before <= drill.rpo_seconds <= age_after
    assert done.data["rpo_seconds"] == drill.rpo_seconds


def test_a_drill_of_a_corrupt_backup_is_recorded_as_not_verified(dr_shop):
    shop = dr_shop
    backup = back_up(shop)
    store = shop.app.backups.store
    manifest = shop.app.backups.find(backup)
    archive = Path(store.root) / manifest.archive_key  # the local store: one file per object
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    shop.publish("drill.due", production="shop")

    (done,) = shop.events("drill.done")
    assert done.data["verified"] is False
    # the restore's failure, named (the exception's type too), then what the verification found
    restore, verification = shop.app.dr_states.drills("shop")[0].detail.split("; ", 1)
    assert restore.startswith(f"restore of backup {backup} failed: IntegrityError: ") and "sha256" in restore
    assert "sha256" in verification


def test_reap_keeps_the_dr_copy_while_failed_over_even_when_its_policy_is_gone(dr_shop):
    from dataclasses import replace

    from doppel.cli.reap import DrCopies, reap
    shop = dr_shop
    back_up(shop)
    alert(shop)
    ghost = shop.app.cloud.restore_target("ghost-copy", production="shop")  # a restore nobody registered
    copy = dr_root(shop)
    before = tree_digest(copy)
    answers, said = [], []

    def ask(count):
        answers.append(count)
        return len(answers) > 1  # no the first time, yes after

    def reap_with(config):
        return reap(shop.app.cloud, shop.app.registry, dry_run=False, productions=["shop"], ask=ask,
                    dr=DrCopies.of(config, shop.app.dr_states), say=said.append)

    # When reap is declined, then runs with the DR policy removed from doppel.yaml, then is accepted
    declined = reap_with(shop.app.config)
    policy_gone = reap_with(replace(shop.app.config, raw={**shop.app.config.raw, "dr": {}}))
    accepted = reap_with(shop.app.config)

    # Then declined removes nothing; without the policy, no keyless copy of the failed-over production is judged
    # (which one serves is not known); with it, only the orphan goes. The DR copy is never listed nor touched.
    assert declined == [] and answers == [1, 1] and "nothing removed" in said
    assert policy_gone == []
    assert [o.resource.name for o in accepted] == ["ghost-copy"] and not ghost.exists()
    assert not any("shop-dr" in line for line in said)
    assert tree_digest(copy) == before and shop.app.dr_states.get("shop").state == FAILED_OVER


def test_a_dry_run_lists_every_step_with_the_dns_change_and_changes_nothing(dr_shop):
    shop = dr_shop
    newest = back_up(shop)
    audit_before = shop.app.audit.count()

    plan = dr.failover_plan(shop.app.deps, "shop", shop.app.config["dr"]["shop"])

    steps = [(s["step"], s["action"]) for s in plan]
    assert steps == [("decide", "lock"), ("freeze", "pause"), ("backup", "choose"), ("restore", "restore"),
                     ("probe", "check"), ("dns", "switch"), ("done", "emit")]
    assert newest in plan[2]["detail"] and newest in plan[3]["detail"]
    assert plan[5]["detail"] == f"{NAME} A: {HOME} (ttl 300) -> {DR_ADDRESS} (ttl 60)"
    # nothing changed: state, names, paused jobs, the audit trail, and no DR copy made
    assert shop.app.dr_states.get("shop").state == NORMAL
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)
    assert frozen_types(shop) == set() and shop.app.audit.count() == audit_before
    assert shop.app.cloud.stack_status("shop-dr") is None


def test_a_dry_run_says_which_step_would_fail_and_once_failed_over_that_there_is_nothing_to_do(dr_shop):
    shop = dr_shop
    policy = shop.app.config["dr"]["shop"]
    plan = dr.failover_plan(shop.app.deps, "shop", policy)
    assert plan[-1]["step"] == "backup" and plan[-1]["action"] == "fails" and "no backup" in plan[-1]["detail"]

    back_up(shop)
    alert(shop)
    (only,) = dr.failover_plan(shop.app.deps, "shop", policy)
    assert only["action"] == "nothing" and "failed_over" in only["detail"] and "failback" in only["detail"]
