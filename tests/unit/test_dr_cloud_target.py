"""The order of a cloud DR target's steps in the functions (core/dr_cloud.py: failover, failback, sync, drill),
against a stand-in for the driver's DR verbs: the real ones run on the OpenStack test bed
(tests/integration/openstack/test_dr_openstack.py), which the fast suite leaves out. The state table and the
local DNS records file are real."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from clouds.backups.verify import VerifyResult
from clouds.local.dns import LocalDnsProvider
from core.cloud import CREATE_COMPLETE, CREATE_IN_PROGRESS, DnsRecord, DriverError, Stack
from core.dr_state import FAILED_OVER, FAILING_BACK, FAILING_OVER, NORMAL, Drill, DrStates
from core.errors import Deferred, PermanentError, TransientError
from functions import drill, failback, failover, sync
from schemas.envelope import Event
from tests.support.state_db import migrated_engine

NOW = datetime(2026, 12, 2, 22, 0, tzinfo=timezone.utc)
TARGET = {"driver": "openstack", "env": "shop-dr", "parameters": {}}
POLICY = {"target": TARGET, "alarms": ["shop-down"], "decision": "automatic", "debounce": 600.0, "backup": "newest",
          "dns": {"provider": None, "records": [{"name": "shop.example.com", "type": "A",
                                                 "value": "{outputs.address}", "ttl": 60}]},
          "health": {"paths": None}}


class StandIn:
    """The DR verbs of a cloud driver, recording what they were asked; the stack completes when told."""

    def __init__(self):
        self.calls, self.status, self.refuse = [], CREATE_IN_PROGRESS, None
        self.envs, self.problems = [], []  # the stack each verb was asked about; what the probe finds
        self.deleted, self.fail_delete, self.fail_home = [], 0, None  # (production, env) deleted; failures to make

    def _stack(self):
        return Stack("id-1", "doppel-shop-dr", "shop-dr", self.status, outputs={"address": "127.0.0.30"})

    def dr_copy_images(self, production, target):
        self.calls.append("images")
        return {"app": "kept img-1"}

    def dr_copy_backup(self, production, target, backup_id, source):
        self.calls.append(f"backup {backup_id}")
        return "kept"

    def dr_stack(self, production, target, key):
        self.calls.append("stack")
        self.envs.append(target["env"])
        if self.refuse:
            raise DriverError(self.refuse, permanent=True)
        return self._stack()

    def dr_restore(self, production, target, backup_id):
        self.calls.append(f"restore {backup_id}")
        self.envs.append(target["env"])
        return ["orders"]

    def dr_probe(self, production, target, backup_id):
        self.calls.append("probe")
        self.envs.append(target["env"])
        return list(self.problems)

    def dr_delete(self, production, target):
        self.calls.append("delete")
        self.envs.append(target["env"])
        self.deleted.append((production, target["env"]))
        if self.fail_delete:
            self.fail_delete -= 1
            raise TransientError("Heat did not answer the delete")
        return True

    def dr_backup_source(self, production, target):
        self.calls.append(f"source {production}")
        self.envs.append(target["env"])
        return f"the databases of {target['env']}"

    def dr_restore_home(self, production, backup_id, restore):
        self.calls.append(f"home {production} {backup_id}")
        if self.fail_home:
            raise DriverError(self.fail_home, env=production)
        restore("scratch", ["orders"])
        return []


@pytest.fixture
def deps(tmp_path):
    dns = LocalDnsProvider(tmp_path / "dns")
    dns.switch(DnsRecord("shop.example.com", "A", "127.0.0.10", 300))
    backup = SimpleNamespace(id="20261202T210000Z-aaaaaa", created_at=NOW - timedelta(hours=1), verify_ok=True)
    emitted, verified, made, restored, catalogue = [], [], [], [], {}

    def back_up(production, source, *, reason, backup_id):
        made.append((production, source, reason, backup_id))
        catalogue[backup_id] = SimpleNamespace(id=backup_id, env=production, reason=reason)

    return SimpleNamespace(
        config={"dr": {"shop": POLICY}, "productions": {"shop": {"driver": "openstack"}}},
        dr=DrStates(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}")), clock=lambda: NOW, scheduler=None,
        backups=SimpleNamespace(newest=lambda production, verified_only=False: backup, store="store",
                                verify=lambda backup_id: verified.append(backup_id) or VerifyResult(
                                    backup_id, "shop", True, True, {"orders": "ok"}),
                                catalogue=catalogue, back_up=back_up,
                                restore=lambda backup_id, into, databases=None: restored.append(
                                    (backup_id, into, databases))),
        verified=verified, made=made, restored=restored,
        cloud=StandIn(), dns=dns, dns_for=lambda policy: dns, probe=SimpleNamespace(http=lambda policy: []),
        emit=lambda type, **data: emitted.append((type, data)) or (type, data), emitted=emitted, backup=backup)


def alarm(**data) -> Event:
    return Event(type="monitor.alert", source="test", time=NOW,
                 data={"alarm_id": "a-1", "alarm_name": "shop-down", "previous": "ok", "current": "alarm", **data})


def test_a_failover_waits_for_the_dr_stack_then_restores_probes_and_switches_to_its_output(deps):
    event = alarm()

    with pytest.raises(Deferred):
        failover.handle(event, deps)
    assert deps.cloud.calls == [f"backup {deps.backup.id}", "stack"]  # nothing restored into a stack being built

    deps.cloud.status = CREATE_COMPLETE
    ((kind, done),) = failover.handle(event, deps)

    assert deps.cloud.calls[2:] == [f"backup {deps.backup.id}", "stack", f"restore {deps.backup.id}", "probe"]
    assert kind == "failover.done" and done["endpoints"]["address"] == "127.0.0.30" and done["rpo_seconds"] == 3600
    assert deps.dns.get("shop.example.com", "A").value == "127.0.0.30"
    row = deps.dr.get("shop")
    assert row.state == FAILED_OVER and row.dr_backup_id == deps.backup.id and row.detail is None


def test_a_refused_dr_stack_is_compensated_the_lock_released_and_the_step_named(deps):
    event = alarm()
    deps.cloud.refuse = "Heat in region RegionTwo refused the DR stack: no flavor m1.small"
    with pytest.raises(DriverError):
        failover.handle(event, deps)

    ((kind, failed),) = failover.on_failure(event, deps.cloud.refuse, deps)

    assert kind == "failover.failed" and failed["step"] == "stack" and "no flavor" in failed["reason"]
    assert deps.cloud.calls[-1] == "delete" and "restore" not in " ".join(deps.cloud.calls)
    assert deps.dns.get("shop.example.com", "A").value == "127.0.0.10"
    row = deps.dr.get("shop")
    assert row.state == NORMAL and row.holder is None


def test_a_sync_copies_images_and_backup_and_makes_no_stack_and_none_while_failed_over(deps):
    due = Event(type="sync.due", source="test", time=NOW, data={"production": "shop"})
    ((kind, synced),) = sync.handle(due, deps)
    assert kind == "sync.done" and synced["backup_id"] == deps.backup.id and not synced.get("skipped")
    assert deps.cloud.calls == ["images", f"backup {deps.backup.id}"] and deps.dr.get("shop").state == NORMAL

    deps.dr.move("shop", (NORMAL,), FAILED_OVER)
    ((_, skipped),) = sync.handle(Event(type="sync.due", source="test", time=NOW, data={"production": "shop"}), deps)
    assert "failed_over" in skipped["skipped"] and deps.cloud.calls == ["images", f"backup {deps.backup.id}"]


def drill_due() -> Event:
    return Event(type="drill.due", source="test", time=NOW - timedelta(seconds=90), data={"production": "shop"})


def test_a_drill_restores_into_an_isolated_stack_of_the_dr_cloud_deletes_it_and_records_the_verification(deps):
    # Breaks caught: a cloud target drilled as a local one (or in the DR stack itself); the drill's backup, the
    # verification or the RTO (from the drill's event) lost on the way to the record and to drill.done
    deps.cloud.status = CREATE_COMPLETE
    event, backup = drill_due(), deps.backup.id

    ((kind, done),) = drill.handle(event, deps)

    scratch = drill.scratch_env("shop", event)
    assert deps.cloud.calls == [f"backup {backup}", "stack", f"restore {backup}", "probe", "delete"]
    assert deps.cloud.envs == [scratch] * 4 and scratch != TARGET["env"]  # the DR stack is never touched
    assert deps.verified == [backup]
    assert (kind, done) == ("drill.done", {"production": "shop", "backup_id": backup, "verified": True,
                                           "rpo_seconds": 3600.0, "rto_seconds": 90.0})
    assert deps.dr.drills("shop") == [Drill("shop", backup, NOW, True, 3600.0, 90.0,
                                            f"backup {backup} of shop: verified (1 database(s) intact)")]


def test_a_drill_whose_stack_fails_its_probe_is_not_verified_and_says_why(deps):
    # Break caught: the problems the probe of the drill's stack found dropped on the way to the record
    deps.cloud.status, deps.cloud.problems = CREATE_COMPLETE, ["orders: 3 rows, 4 at backup time"]

    ((kind, done),) = drill.handle(drill_due(), deps)

    assert kind == "drill.done" and done["verified"] is False
    (drilled,) = deps.dr.drills("shop")
    assert not drilled.verified and drilled.detail == "orders: 3 rows, 4 at backup time"


class LocalScratch:
    """The verbs a drill of a local (not cloud) target asks of the driver, recording them; one server database."""

    def __init__(self, root):
        self.root, self.calls = root, []

    def delete_stack(self, env, ignore_missing=True):
        self.calls.append(f"delete {env}")

    def restore_target(self, env, production=None):
        self.calls.append(f"target {env} of {production}")
        return self.root

    def database_targets(self, env, production):
        return {"orders": {"kind": "postgresql", "database": f"doppel_{env}_orders", "of": production}}


def test_a_local_drill_restores_the_server_databases_into_its_scratch_environments_own(deps, tmp_path):
    # Breaks caught: the restore given no place for the backup's server databases (a backup holding one fails
    # every drill: "the target environment has no place for" it), or the places of no environment; the real
    # driver and databases: tests/integration/databases/test_postgresql_backup.py
    deps.config["dr"], deps.cloud = {}, LocalScratch(tmp_path)
    deps.probe.files = lambda spec, root, policy: []
    event = drill_due()
    scratch = drill.scratch_env("shop", event)

    ((kind, done),) = drill.handle(event, deps)

    targets = {"orders": {"kind": "postgresql", "database": f"doppel_{scratch}_orders", "of": "shop"}}
    assert deps.restored == [(deps.backup.id, tmp_path, targets)]
    assert deps.cloud.calls == [f"delete {scratch}", f"target {scratch} of shop", f"delete {scratch}"]
    assert kind == "drill.done" and done["verified"] is True


def test_no_drill_of_a_cloud_target_while_it_is_failed_over(deps):
    # Break caught: the state of another production than the drilled one read (a drill stack made from the DR
    # template could reach the serving DR copy's database)
    deps.dr.move("shop", (NORMAL,), FAILED_OVER)

    with pytest.raises(PermanentError, match="no drill of shop while it is failed_over"):
        drill.handle(drill_due(), deps)
    assert deps.cloud.calls == [] and deps.dr.drills() == []


def test_a_dns_value_naming_an_output_the_dr_stack_lacks_fails_at_the_dns_step_and_the_stack_goes(deps):
    # Breaks caught: the step running not said (failover.failed would name the probe), or the error not naming
    # the policy to fix
    record = {**POLICY["dns"]["records"][0], "value": "{outputs.nosuch}"}
    deps.config["dr"]["shop"] = {**POLICY, "dns": {**POLICY["dns"], "records": [record]}}
    deps.cloud.status = CREATE_COMPLETE
    event = alarm()
    with pytest.raises(PermanentError, match=r"dr\.shop\.dns: the DR stack has no output 'nosuch' \(it has: address\)"):
        failover.handle(event, deps)

    ((kind, failed),) = failover.on_failure(event, "no output", deps)

    assert kind == "failover.failed" and failed["step"] == "dns"
    assert deps.cloud.calls[-1] == "delete" and deps.dns.get("shop.example.com", "A").value == "127.0.0.10"
    assert deps.dr.get("shop").state == NORMAL


def test_a_cloud_failover_without_a_backup_fails_at_its_first_step(deps):
    # Break caught: a failure before any step named by no step at all
    deps.backups.newest = lambda production, verified_only=False: None
    event = alarm()
    with pytest.raises(PermanentError, match="no backup to restore"):
        failover.handle(event, deps)

    ((kind, failed),) = failover.on_failure(event, "no backup", deps)

    assert kind == "failover.failed" and failed["step"] == "failover" and deps.dr.get("shop").state == NORMAL


def test_a_cloud_failover_whose_probe_fails_forgets_the_restore_with_the_stack_and_restores_again_next_time(deps):
    # Break caught: the deleted stack's backup still recorded as restored (the next failover would skip the
    # restore and serve an empty DR stack)
    deps.cloud.status, deps.cloud.problems = CREATE_COMPLETE, ["orders: 0 rows, 4 at backup time"]
    first = alarm()
    with pytest.raises(TransientError, match="not healthy"):
        failover.handle(first, deps)
    assert deps.dr.get("shop").dr_backup_id == deps.backup.id

    failover.on_failure(first, "not healthy", deps)

    assert deps.cloud.calls[-1] == "delete" and deps.dr.get("shop").dr_backup_id is None
    deps.cloud.problems = []
    later = Event(type="monitor.alert", source="test", time=NOW + timedelta(hours=1),
                  data={**alarm().data, "alarm_id": "a-2"})  # outside the debounce window
    ((kind, _),) = failover.handle(later, deps)
    assert kind == "failover.done" and deps.cloud.calls.count(f"restore {deps.backup.id}") == 2


# -- failback --------------------------------------------------------------------------------------------------
HOME = DnsRecord("shop.example.com", "A", "127.0.0.10", 300)


def failed_over(deps):
    """Production served by the DR stack (a failover done), the stand-in's record of it cleared."""
    deps.cloud.status = CREATE_COMPLETE
    failover.handle(alarm(), deps)
    assert deps.dr.get("shop").state == FAILED_OVER and deps.dns.get("shop.example.com", "A").value == "127.0.0.30"
    deps.cloud.calls.clear()
    deps.cloud.envs.clear()


def failback_requested(event_id="fb-1") -> Event:
    return Event(id=event_id, type="failback.requested", source="test", time=NOW, data={"production": "shop"})


def test_a_failback_backs_the_dr_stack_up_restores_it_home_switches_back_then_deletes_the_stack(deps):
    # Breaks caught: the backup taken of another production's DR stack, or not the failback's; its restore
    # skipped, aimed at another production or backup; the DR stack not deleted, or another one
    failed_over(deps)
    event = failback_requested()
    backup_id = failback.backup_id_for(event)

    ((kind, done),) = failback.handle(event, deps)

    assert deps.cloud.calls == ["source shop", f"home shop {backup_id}", "delete"]
    assert deps.cloud.envs == ["shop-dr", "shop-dr"] and deps.cloud.deleted == [("shop", "shop-dr")]
    assert deps.made == [("shop", "the databases of shop-dr", "failback", backup_id)]
    assert deps.restored == [(backup_id, "scratch", ["orders"])]
    assert deps.dns.get("shop.example.com", "A") == HOME
    assert (kind, done) == ("failback.done", {"production": "shop", "backup_id": backup_id})
    row = deps.dr.get("shop")
    assert row.state == NORMAL and row.detail == f"failed back with {backup_id}"


def test_a_failback_retried_after_its_restore_neither_backs_up_nor_restores_again(deps):
    # Break caught: the restore not recorded in the row (or recorded for another production), so a retry
    # restores production's databases again
    failed_over(deps)
    deps.cloud.fail_delete = 1
    event = failback_requested()
    backup_id = failback.backup_id_for(event)

    with pytest.raises(TransientError):
        failback.handle(event, deps)
    assert deps.dr.get("shop").detail == f"restored {backup_id}"
    ((kind, _),) = failback.handle(event, deps)  # the worker's retry

    assert kind == "failback.done" and len(deps.made) == 1
    assert deps.cloud.calls == ["source shop", f"home shop {backup_id}", "delete", "delete"]


def test_no_failback_while_the_failover_waits_for_its_dr_stack(deps):
    # Break caught: a failback claimed from a failover that has not switched the names yet (it would back up
    # and carry home a DR stack that holds nothing)
    alert = alarm()
    with pytest.raises(Deferred):
        failover.handle(alert, deps)  # the DR stack is being built
    deps.cloud.calls.clear()

    with pytest.raises(PermanentError) as refused:
        failback.handle(failback_requested(), deps)

    assert str(refused.value) == ("cannot fail shop back while it is failing_over; wait for it to finish "
                                  "(`doppel dr status`) and ask again")
    assert deps.cloud.calls == [] and deps.made == []
    row = deps.dr.get("shop")
    assert row.state == FAILING_OVER and row.holder == alert.id


def test_a_failback_of_a_production_that_is_not_failed_over_does_nothing_and_says_so_in_the_log(deps, caplog):
    # Breaks caught: the log line, the only trace of a failback that did nothing, not naming the production (its
    # argument dropped or another given: the line then says "%s" or "None") or not saying why
    caplog.set_level(logging.INFO, logger=failback.__name__)

    assert failback.handle(failback_requested(), deps) == []

    assert "shop is not failed over; nothing to fail back" in caplog.messages
    assert deps.cloud.calls == [] and deps.made == [] and deps.dr.get("shop").state == NORMAL


def test_a_second_failback_while_one_is_running_is_refused(deps):
    # Break caught: a failback taking a row another failback holds (two would restore production at once)
    failed_over(deps)
    deps.cloud.fail_home = "the restore beside production is still running"
    with pytest.raises(DriverError):
        failback.handle(failback_requested("fb-1"), deps)  # the worker retries it later: it holds the row
    calls = list(deps.cloud.calls)

    with pytest.raises(PermanentError, match="cannot fail shop back while it is failing_back"):
        failback.handle(failback_requested("fb-2"), deps)

    assert deps.cloud.calls == calls and len(deps.made) == 1
    row = deps.dr.get("shop")
    assert row.state == FAILING_BACK and row.holder == "fb-1"


class Racing(DrStates):
    """The state table, where another failback takes the row between this one's read and its move."""

    def move(self, production, expected, state, **values):
        if state == FAILING_BACK and values.get("holder") != "another":
            super().move(production, expected, state, holder="another")
        return super().move(production, expected, state, **values)


def test_a_failback_that_loses_the_row_to_another_at_the_same_moment_says_so(deps):
    # Break caught: the refusal of a lost race saying nothing of what happened or where to look
    failed_over(deps)
    deps.dr = Racing(deps.dr._engine)

    with pytest.raises(PermanentError) as refused:
        failback.handle(failback_requested(), deps)

    assert str(refused.value) == ("another failover or failback of shop started at the same moment; see "
                                  "`doppel dr status`")
    assert deps.cloud.calls == [] and deps.dr.get("shop").holder == "another"
