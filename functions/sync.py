"""sync.due -> sync.done: refresh the DR copy from the newest backup, so a failover finds it warm.

Refuses while production is failed over (or on its way there or back): the DR copy
then holds data written since the failover, which a refresh would overwrite. That
refusal is a `sync.done` with `skipped` saying why, and the DR copy is not touched.
The refresh restores into a sibling directory and swaps, holding the `syncing`
state so a failover waits for the swap instead of racing it. A cloud target
(driver: openstack or aws) stays cold: the sync copies production's boot images and the
backup to the DR side (core/dr_cloud.py) and starts nothing there.
"""
from __future__ import annotations

from core import dr, dr_cloud
from core.dr_state import NORMAL, SYNCING

NAME = "sync"
CONSUMES = "sync.due"
EMITS = ("sync.done", "sync.failed")



def handle(event, deps) -> list:
    production = event.data["production"]
    policy = dr.policy_for(deps, production)
    states = dr.states(deps)
    row = states.get(production)
    if row.state not in (NORMAL, SYNCING):
        return [skipped(deps, production, f"production {production} is {row.state}: the DR copy may hold data "
                                          "written since the failover; sync resumes after the failback")]
    backup = dr.choose_backup(deps, production, policy)
    if dr_cloud.is_cloud(policy):
        return [sync_cloud(event, deps, production, policy, backup)]
    if row.dr_backup_id == backup.id:
        return [skipped(deps, production, f"the DR copy already holds backup {backup.id}", backup.id)]
    if not (row.state == SYNCING and row.holder == event.id) and \
            not states.move(production, (NORMAL,), SYNCING, holder=event.id):
        return [skipped(deps, production, f"production {production} became {states.get(production).state} "
                                          "before the sync began")]
    try:
        dr.restore_dr_copy(deps, production, policy, backup.id)
    finally:
        states.move(production, (SYNCING,), NORMAL, holder=None)
    return [deps.emit("sync.done", production=production, backup_id=backup.id)]


def sync_cloud(event, deps, production: str, policy: dict, backup):
    """A cloud target stays cold: its images and the backup copied to the DR side (each kept when it is there
    already), no stack made; holding `syncing`, so a failover waits for the copy."""
    states = dr.states(deps)
    row = states.get(production)
    if not (row.state == SYNCING and row.holder == event.id) and \
            not states.move(production, (NORMAL,), SYNCING, holder=event.id):
        return skipped(deps, production, f"production {production} became {states.get(production).state} "
                                         "before the sync began")
    try:
        dr_cloud.sync(deps, production, policy, backup)
    finally:
        states.move(production, (SYNCING,), NORMAL, holder=None)
    return deps.emit("sync.done", production=production, backup_id=backup.id)


def skipped(deps, production: str, why: str, backup_id: str | None = None):
    return deps.emit("sync.done", production=production, backup_id=backup_id, skipped=why)


def on_failure(event, reason: str, deps) -> list:
    return [deps.emit("sync.failed", production=event.data["production"], step=NAME, reason=reason,
                      cause_id=event.id)]
