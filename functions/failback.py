"""failback.requested -> failback.done: production home again, with what was written to the DR copy meanwhile.

Backs the DR copy up (recorded as a backup of the production: it is production's
data now), restores it into production's place through a sibling directory and a
swap, so production is never half-written and the tree it replaces is kept aside
(its server databases likewise: restored beside, checked, swapped in, production's
kept renamed; clouds.backups.home_databases), checks it, points the names back at
what they said before the failover, and unfreezes the jobs. A replay resumes: the backup and the restore are not redone.
A cloud target (driver: openstack or aws): the DR stack's databases are backed up, restored
beside production's own, checked and swapped in (core/dr_cloud.py), and the DR
stack is deleted once the names point home.
"""
from __future__ import annotations

import logging

from core import dr, dr_cloud
from core.dr_state import FAILED_OVER, FAILING_BACK, FAILING_OVER, NORMAL
from core.errors import PermanentError
from core.ids import derived_backup_id

log = logging.getLogger(__name__)

NAME = "failback"
CONSUMES = "failback.requested"
EMITS = ("failback.done", "failback.failed")



def backup_id_for(event) -> str:
    return derived_backup_id(event.time, event.id, tag="fb")


def handle(event, deps) -> list:
    production = event.data["production"]
    policy = dr.policy_for(deps, production)
    row = claim(event, deps, production)
    if row is None:
        return []
    backup_id = backup_id_for(event)
    if deps.backups.catalogue.get(backup_id) is None:
        deps.backups.back_up(production, dr_cloud.backup_source(deps, production, policy), reason="failback",
                             backup_id=backup_id)
    if row.detail != f"restored {backup_id}":  # production's data and databases: restored beside, swapped in
        dr_cloud.restore_home(deps, production, backup_id)
        dr.states(deps).note(production, detail=f"restored {backup_id}")
    if not dr_cloud.is_cloud(policy):
        home = deps.cloud.production_root(production)
        dr.require_healthy(production, str(home), deps.probe.files(deps.config["productions"][production], home,
                                                                   policy))
    dr.switch_back(deps, production, policy, row.previous_dns)
    if deps.scheduler is not None:
        deps.scheduler.resume_jobs(dr.freeze_selector(production))
    if dr_cloud.is_cloud(policy):
        deps.cloud.dr_delete(production, policy["target"])  # cold again: its data is home
    # The DR copy now holds data newer than any backup it came from: the next sync or failover refills it.
    dr.states(deps).move(production, (FAILING_BACK,), NORMAL, holder=None, backup_id=None, dr_backup_id=None,
                         previous_dns=[], alarm_at=None, detail=f"failed back with {backup_id}")
    return [deps.emit("failback.done", production=production, backup_id=backup_id)]


def claim(event, deps, production: str):
    """The state row once this event holds it (failing_back), or None when there is nothing to fail back."""
    states = dr.states(deps)
    row = states.get(production)
    if row.state == FAILING_BACK and row.holder == event.id:
        return row
    if row.state == NORMAL:
        log.info("%s is not failed over; nothing to fail back", production)
        return None
    if row.state not in (FAILED_OVER, FAILING_OVER) or (row.state == FAILING_OVER and not row.dns_switched):
        raise PermanentError(f"cannot fail {production} back while it is {row.state}; wait for it to finish "
                             "(`doppel dr status`) and ask again")
    if not states.move(production, (row.state,), FAILING_BACK, holder=event.id):
        raise PermanentError(f"another failover or failback of {production} started at the same moment; "
                             "see `doppel dr status`")
    return states.get(production)


def on_failure(event, reason: str, deps) -> list:
    """Production stays on the DR copy (failed_over): nothing was lost, and the failback can be asked again."""
    production = event.data["production"]
    states = dr.states(deps)
    if states.get(production).holder == event.id:
        states.move(production, (FAILING_BACK,), FAILED_OVER, detail=f"failback failed: {reason}")
    return [deps.emit("failback.failed", production=production, step=NAME, reason=reason, cause_id=event.id)]
