"""drill.due -> drill.done: prove the newest backup restores, in an isolated copy, and measure RPO and RTO.

Restores the production's newest backup into a scratch environment of its own
(no DNS record is touched, the DR copy neither), verifies the backup (sha256,
size, every database's integrity_check; the catalogue marks it verified), probes
the restored tree as a failover would, tears the scratch environment down whatever
happened, and records the drill (`doppel dr report`). RPO: the backup's age when
drilled; RTO: the seconds the restore and the probe took. A cloud target (driver: openstack or aws)
drills in an isolated stack of the DR cloud, made from the DR template and deleted
after (core/dr_cloud.py); its RTO counts from the drill's event, stack included.
"""
from __future__ import annotations

import hashlib
import time

from core import dr, dr_cloud
from core.dr_state import Drill
from core.errors import PermanentError

NAME = "drill"
CONSUMES = "drill.due"
EMITS = ("drill.done", "drill.failed")
DEFAULT_HEALTH = {"health": {"paths": None}}



def scratch_env(production: str, event) -> str:
    return f"{production[:24]}-drill-{hashlib.sha256(event.id.encode()).hexdigest()[:8]}"


def handle(event, deps) -> list:
    production = event.data["production"]
    if production not in deps.config["productions"]:
        raise PermanentError(f"cannot drill {production!r}: doppel.yaml has no such production")
    backup = deps.backups.newest(production)
    if backup is None:
        raise PermanentError(f"production {production} has no backup to drill; back it up first")
    policy = deps.config["dr"].get(production, DEFAULT_HEALTH)
    env, started = scratch_env(production, event), time.monotonic()
    if "target" in policy and dr_cloud.is_cloud(policy):  # an isolated stack in the DR cloud, deleted after
        problems, rto = dr_cloud.drill(deps, event, production, policy, backup, env)
        result = deps.backups.verify(backup.id)
        return record(deps, production, backup, result, problems, rto)
    try:
        deps.cloud.delete_stack(env, ignore_missing=True)  # a half-done earlier attempt
        root = deps.cloud.restore_target(env, production=production)
        try:
            deps.backups.restore(backup.id, root, databases=deps.cloud.database_targets(env, production))
            problems = deps.probe.files(deps.config["productions"][production], root, policy)
        except Exception as exc:  # noqa: BLE001 - a backup that does not restore is the drill's finding
            problems = [f"restore of backup {backup.id} failed: {type(exc).__name__}: {exc}"]
        rto = time.monotonic() - started
        result = deps.backups.verify(backup.id)
    finally:
        deps.cloud.delete_stack(env, ignore_missing=True)
    return record(deps, production, backup, result, problems, rto)


def record(deps, production: str, backup, result, problems: list[str], rto: float) -> list:
    verified = result.ok and not problems
    rpo = dr.seconds_between(backup.created_at, deps.clock())
    detail = str(result) if not problems else "; ".join([*problems, *result.problems])
    dr.states(deps).record_drill(Drill(production, backup.id, deps.clock(), verified, rpo, rto, detail))
    return [deps.emit("drill.done", production=production, backup_id=backup.id, verified=verified,
                      rpo_seconds=rpo, rto_seconds=rto)]


def on_failure(event, reason: str, deps) -> list:
    return [deps.emit("drill.failed", production=event.data["production"], step=NAME, reason=reason,
                      cause_id=event.id)]
