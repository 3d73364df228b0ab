"""The DR chain's steps for a cloud target (`dr.<production>.target.driver` other than local: openstack or aws).

Cold between failovers: a sync copies production's boot images and the newest backup to the DR side, and starts
nothing there; a failover makes the DR stack from the template with those images (deferred, not waited for,
while the cloud builds it), restores the backup into its components and probes them; the failback or a failed
failover deletes the stack again. Every cloud-specific verb is the driver's (core.cloud.DrTargetDriver, through
`deps.cloud`); this module only orders them and says, in the DR state row, which step is running, so a
`failover.failed` names it.
"""
from __future__ import annotations

import logging
import re

from core import dr
from core.dr_state import NORMAL
from core.errors import Deferred, PermanentError, TransientError

log = logging.getLogger(__name__)

STACK_POLL_S = 5.0  # how soon a failover waiting for the DR stack comes back (the worker's delay queues)
STEP_PREFIX = "at step "
OUTPUT = re.compile(r"\{outputs\.([^{}]+)\}")


def is_cloud(policy: dict) -> bool:
    return policy["target"].get("driver", "local") != "local"


def at(deps, production: str, step: str) -> None:
    """Say in the DR row which step is running (what failover.failed names when it gives up)."""
    dr.states(deps).note(production, detail=STEP_PREFIX + step)


def step_of(row, default: str) -> str:
    detail = row.detail or ""
    return detail[len(STEP_PREFIX):] if detail.startswith(STEP_PREFIX) else default


def sync(deps, production: str, policy: dict, backup) -> str:
    """Make the DR side ready for `backup`: images copied (or kept), the backup readable there; nothing started."""
    target = policy["target"]
    images = deps.cloud.dr_copy_images(production, target)
    copied = deps.cloud.dr_copy_backup(production, target, backup.id, deps.backups.store)
    summary = "; ".join([*(f"{name}: {what}" for name, what in sorted(images.items())), copied])
    log.info("sync of %s into %s: %s", production, target["env"], summary)
    return summary


def fail_over(deps, event, production: str, policy: dict, backup, row):
    """The DR stack made, `backup` restored into it and probed; the stack (its outputs are the endpoints)."""
    target = policy["target"]
    at(deps, production, "backup")
    deps.cloud.dr_copy_backup(production, target, backup.id, deps.backups.store)  # kept when a sync copied it
    at(deps, production, "stack")
    stack = deps.cloud.dr_stack(production, target, event.id)
    if stack is None:
        raise TransientError(f"the DR stack of {production} was asked for but the cloud does not show it yet")
    if stack.failed:
        raise PermanentError(f"the DR stack {stack.name} of {production} failed: {stack.status_reason or '?'}")
    if not stack.complete:
        raise Deferred(STACK_POLL_S, f"the DR stack {stack.name} of {production} is {stack.status}")
    if row.dr_backup_id != backup.id:
        at(deps, production, "restore")
        restored = deps.cloud.dr_restore(production, target, backup.id)
        dr.states(deps).note(production, dr_backup_id=backup.id)
        log.info("failover of %s: backup %s restored into %s (%s)", production, backup.id, stack.name,
                 ", ".join(restored) or "no database")
    at(deps, production, "probe")
    dr.require_healthy(production, stack.name, deps.cloud.dr_probe(production, target, backup.id))
    return stack


def compensate(deps, production: str, policy: dict) -> None:
    """A failover that gave up before any name moved: the half-made DR stack goes (cold again)."""
    if deps.cloud.dr_delete(production, policy["target"]):
        log.info("failover of %s gave up: its DR stack %s is being deleted", production, policy["target"]["env"])
    dr.states(deps).note(production, dr_backup_id=None)


def fill_outputs(value: str, outputs: dict, production: str) -> str:
    """A DNS record's value with {outputs.X} filled from the DR stack's outputs."""
    def one(match) -> str:
        found = outputs.get(match.group(1))
        if found in (None, ""):
            have = ", ".join(sorted(k for k, v in outputs.items() if v not in (None, ""))) or "none"
            raise PermanentError(f"dr.{production}.dns: the DR stack has no output {match.group(1)!r} (it has: "
                                 f"{have}); fix the record's value or the DR template's outputs")
        return str(found)
    return OUTPUT.sub(one, value)


def backup_source(deps, production: str, policy: dict):
    """What a failback backs up: the DR stack's components (a local target: the DR copy's directory)."""
    if is_cloud(policy):
        return deps.cloud.dr_backup_source(production, policy["target"])
    return deps.cloud.backup_source(dr.dr_env(policy))


def restore_home(deps, production: str, backup_id: str) -> list[str]:
    """The failback's backup put into production's components, each checked then swapped in whole; what
    production held before is kept aside (the names returned)."""
    kept = deps.cloud.dr_restore_home(production, backup_id, lambda into, databases: deps.backups.restore(
        backup_id, into, databases=databases))
    if kept:
        log.warning("%s: what production held before the failback is kept: %s; delete it once you no longer "
                    "need it", production, ", ".join(kept))
    return kept


def drill(deps, event, production: str, policy: dict, backup, scratch: str) -> tuple[list[str], float]:
    """Restore `backup` into an isolated stack `scratch` in the DR cloud (no name switched, the DR stack not
    touched), probe it, and delete it whatever happened, except while the cloud still builds it (deferred).
    The problems found, and the RTO: from the drill's event to a probed stack."""
    row = dr.states(deps).get(production)
    if row.state != NORMAL:
        raise PermanentError(f"no drill of {production} while it is {row.state}: a drill stack made from the DR "
                             "template could reach the serving DR copy's database; drill after the failback")
    target = {**policy["target"], "env": scratch}
    done = False
    try:
        deps.cloud.dr_copy_backup(production, policy["target"], backup.id, deps.backups.store)
        stack = deps.cloud.dr_stack(production, target, event.id)
        if stack is not None and not stack.failed and not stack.complete:
            raise Deferred(STACK_POLL_S, f"the drill stack {stack.name} of {production} is {stack.status}")
        done = True
        if stack is None or stack.failed:
            problems = [f"the drill stack of {production} failed: {stack.status_reason if stack else 'not made'}"]
        else:
            deps.cloud.dr_restore(production, target, backup.id)
            problems = deps.cloud.dr_probe(production, target, backup.id)
    except Deferred:
        raise
    except Exception as exc:  # noqa: BLE001 - a backup that does not restore is the drill's finding
        done, problems = True, [f"restore of backup {backup.id} into a DR stack failed: {type(exc).__name__}: {exc}"]
    finally:
        if done:
            deps.cloud.dr_delete(production, target)
    return problems, dr.seconds_between(event.time, deps.clock())


def failover_plan(deps, production: str, policy: dict) -> list[dict]:
    """core.dr.failover_plan, whose restore and file-probe steps a cloud target replaces by what it would do in
    the DR cloud: the images it boots, the stack it creates, the databases it restores (reading only)."""
    plan = dr.failover_plan(deps, production, policy)
    if not is_cloud(policy) or not any(step["step"] == "restore" for step in plan):
        return plan
    backup = dr.choose_backup(deps, production, policy)
    target = policy["target"]
    seen = deps.cloud.dr_describe(production, target)
    stack, steps = seen["stack"], []
    for step in plan:
        if step["step"] == "restore":
            if not seen["images"]:
                return steps + [{"step": "images", "action": "fails",
                                 "detail": f"no image of {production} was copied to {seen['where']} yet; a sync "
                                           "copies them (sync.due)"}]
            steps.append({"step": "images", "action": "boot", "detail": ", ".join(
                f"{name} from {image}" for name, image in sorted(seen["images"].items())) + " (copied by sync)"})
            if stack is not None:
                steps.append({"step": "stack", "action": "keep", "detail": f"{stack.name} in {seen['where']} is "
                                                                           f"{stack.status} already"})
            else:
                template = target.get("template") or "production's template"
                steps.append({"step": "stack", "action": "create", "detail": f"doppel-{target['env']} in "
                              f"{seen['where']} from {template} (deleted again if the failover gives up)"})
            trees = [tree["name"] for tree in deps.config["productions"][production].get("files") or ()]
            steps.append({"step": "restore", "action": "restore", "detail": f"{backup.id} from {seen['store']} "
                          "into the DR stack's databases" + (f" and files {', '.join(trees)} onto its servers "
                                                             "(rsync, host keys pinned)" if trees else "")})
        elif step["step"] == "probe" and step["detail"].startswith("the DR copy holds"):
            steps.append({"step": "probe", "action": "check",
                          "detail": "every table of the DR stack's databases holds the backup's rows"})
        else:
            steps.append(step)
    return steps
