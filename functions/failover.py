"""monitor.alert (and failover.confirmed) -> failover.done: production up in the DR target, its names pointing there.

Acts on a transition into `alarm` only (previous != alarm): Aodh's repeats
(`repeat_actions`) and an alarm flapping back into `alarm` inside the policy's
debounce window are ignored. The `dr_state` row is the lock: one failover at a time
per production, and a replay of the same event resumes where it stopped (the restore
is skipped once the DR copy holds the backup, the DNS records read before the first
switch are kept). With `decision: confirm` an alarm only waits for failover.confirmed.
While a sync swaps the DR copy the failover is deferred (the worker brings it back a
few seconds later, no thread waits meanwhile), unless that sync is older than
SYNC_WAIT_S: then it is taken for dead, and the failover goes ahead. A failover that gave up after
its DNS switch holds the row no more: a confirmation (`doppel dr failover`) takes it up again.
"""
from __future__ import annotations

import logging

from core import dr, dr_cloud
from core.dr_state import FAILED_OVER, FAILING_OVER, NORMAL, PENDING, SYNCING
from core.errors import Deferred, TransientError

log = logging.getLogger(__name__)

NAME = "failover"
CONSUMES = ("monitor.alert", "failover.confirmed")
EMITS = ("failover.done", "failover.failed")
SYNC_WAIT_S = 1800.0  # a sync older than this is taken for dead, and the failover goes ahead
SYNC_POLL_S = 5.0  # how soon a failover deferred by a running sync comes back



def handle(event, deps) -> list:
    production = dr.production_of_alert(deps, event.data) if event.type == "monitor.alert" \
        else event.data["production"]
    if production is None:
        log.info("alarm %s (%s) concerns no DR policy; ignored", event.data["alarm_id"],
                 event.data.get("alarm_name", ""))
        return []
    policy = dr.policy_for(deps, production)
    starts = decide(event, deps, production, policy) if event.type == "monitor.alert" \
        else confirm(event, deps, production)
    return fail_over(event, deps, production, policy) if starts else []


def decide(event, deps, production: str, policy: dict) -> bool:
    """Whether this alert starts a failover now (True), or waits for a confirmation / is ignored (False)."""
    data, states = event.data, dr.states(deps)
    row = states.get(production)
    if row.holder == event.id and row.state == FAILING_OVER:
        return True  # a retry of our own failover
    if data["current"] != "alarm":
        if data["current"] == "ok" and row.state == PENDING:
            states.move(production, (PENDING,), NORMAL, holder=None, detail=f"alarm {data['alarm_id']} cleared")
        return False
    if data.get("previous") == "alarm":
        return False  # a repeat (repeat_actions), not a transition
    if row.last_trigger_at and dr.seconds_between(row.last_trigger_at, event.time) < policy["debounce"]:
        log.info("%s: alarm %s inside the %.0f s debounce window of %s; ignored", production, data["alarm_id"],
                 policy["debounce"], row.last_trigger_at.isoformat())
        return False
    defer_while_syncing(deps, production)
    target = PENDING if policy["decision"] == "confirm" else FAILING_OVER
    moved = states.move(production, (NORMAL, SYNCING), target, holder=event.id, alarm_id=data["alarm_id"],
                        alarm_at=event.time, last_trigger_at=event.time, detail=data.get("reason"))
    if not moved:
        log.info("%s: alarm %s while %s; ignored", production, data["alarm_id"], states.get(production).state)
    return moved and target == FAILING_OVER


def confirm(event, deps, production: str) -> bool:
    """A person (or a system) said fail over: go, from normal or from an alarm waiting for this."""
    states = dr.states(deps)
    row = states.get(production)
    if row.holder == event.id and row.state == FAILING_OVER:
        return True
    defer_while_syncing(deps, production)
    row = states.get(production)
    given_up = row.state == FAILING_OVER and row.holder is None  # failed past its switch: asked again
    if row.state not in (NORMAL, PENDING, SYNCING) and not given_up:
        log.info("%s: failover confirmed while %s; nothing to do", production, row.state)
        return False
    earlier = row.state == PENDING or given_up  # the alarm it answers came before this confirmation
    return states.move(production, (row.state,), FAILING_OVER, unheld=given_up, holder=event.id,
                       alarm_id=row.alarm_id if earlier else event.data.get("alarm_id"),
                       alarm_at=row.alarm_at if earlier else event.time,
                       last_trigger_at=row.last_trigger_at if earlier else event.time)


def defer_while_syncing(deps, production: str) -> None:
    """A sync swapping the DR copy must finish first: defer until it has; a sync silent for SYNC_WAIT_S is
    taken for dead."""
    row = dr.states(deps).get(production)
    if row.state != SYNCING:
        return
    if dr.seconds_between(row.since, deps.clock()) > SYNC_WAIT_S:
        log.warning("%s: the sync that began %s never finished; failing over anyway", production, row.since)
        return
    raise Deferred(SYNC_POLL_S, f"a sync of {production} is swapping the DR copy (since {row.since:%H:%M:%S} UTC); "
                                "the failover goes ahead once it is done")


def fail_over(event, deps, production: str, policy: dict) -> list:
    """Freeze the jobs, restore the DR copy, probe it, switch the names, probe again; failover.done."""
    states = dr.states(deps)
    row = states.get(production)
    if deps.scheduler is not None:
        deps.scheduler.pause_jobs(dr.freeze_selector(production), f"failover of {production}")
    backup = dr.choose_backup(deps, production, policy)
    if dr_cloud.is_cloud(policy):  # a stack made now in the DR cloud, the backup restored into it, probed
        stack = dr_cloud.fail_over(event=event, deps=deps, production=production, policy=policy, backup=backup,
                                   row=row)
        fill = lambda value: dr_cloud.fill_outputs(value, stack.outputs, production)  # noqa: E731
        dr_cloud.at(deps, production, "dns")
    else:
        root = deps.cloud.restore_target(dr.dr_env(policy), production=production)
        if row.dr_backup_id != backup.id or not any(root.iterdir()):
            root = dr.restore_dr_copy(deps, production, policy, backup.id)
        dr.require_healthy(production, str(root), deps.probe.files(deps.config["productions"][production], root,
                                                                   policy))
        stack, fill = deps.cloud.stack_status(dr.dr_env(policy)), None
    dr.remember_dns(deps, production, policy)
    dr.switch_to_dr(deps, production, policy, fill)
    dr.require_healthy(production, policy["health"].get("url", ""), deps.probe.http(policy))
    serving = deps.clock()
    if not states.move(production, (FAILING_OVER,), FAILED_OVER, backup_id=backup.id,
                       **({"detail": None} if fill else {})):  # a cloud target's step is done
        raise TransientError(f"the failover of {production} lost its lock (now {states.get(production).state})")
    return [deps.emit("failover.done", production=production, backup_id=backup.id,
                      rpo_seconds=dr.seconds_between(backup.created_at, row.alarm_at),
                      rto_seconds=dr.seconds_between(row.alarm_at, serving),
                      endpoints={k: str(v) for k, v in (stack.outputs if stack else {}).items()})]


def on_failure(event, reason: str, deps) -> list:
    """Give the lock back (unless the names already point at the DR copy) and say what failed."""
    production = dr.production_of_alert(deps, event.data) if event.type == "monitor.alert" \
        else event.data["production"]
    if production is None or production not in deps.config["dr"]:
        return []
    states, row = dr.states(deps), dr.states(deps).get(production)
    policy, step = deps.config["dr"][production], NAME
    if row.holder == event.id and row.state == FAILING_OVER:
        if dr_cloud.is_cloud(policy):
            step = dr_cloud.step_of(row, NAME)
        if row.dns_switched:
            reason += (f"; the DNS of {production} already points at the DR copy: fix the cause and run "
                       f"`doppel dr failover {production}` again, or `doppel dr failback {production}`")
            states.note(production, holder=None, detail=reason)  # nobody holds it: a confirmation may resume it
        else:
            if dr_cloud.is_cloud(policy):
                dr_cloud.compensate(deps, production, policy)  # the half-made DR stack goes
            states.move(production, (FAILING_OVER,), NORMAL, holder=None, previous_dns=[], detail=reason)
            if deps.scheduler is not None:
                deps.scheduler.resume_jobs(dr.freeze_selector(production))
    return [deps.emit("failover.failed", production=production, step=step, reason=reason, cause_id=event.id)]
