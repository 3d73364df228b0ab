"""backup.due or env.expired -> backup.done: stream an environment (or a production) into the backup store.

For an expiring environment this is the step before deletion: teardown runs only
on the backup.done it emits. The backup id is derived from the event, so a retry
after a crash writes the same backup again instead of a second one.
"""
from core.ids import derived_backup_id
from core.registry import EXPIRING

NAME = "backup"
CONSUMES = ("backup.due", "env.expired")
EMITS = ("backup.done", "backup.failed")



def backup_id_for(event) -> str:
    return derived_backup_id(event.time, event.id)


def handle(event, deps) -> list:
    target, reason = event.data["env"], event.data.get("reason", "scheduled")
    if event.type == "env.expired":
        env = deps.registry.living(target)
        if env is None:
            return []  # deleted already (a replay, or deleted by hand before its TTL)
        deps.registry.move(env, EXPIRING, event_id=event.id, reason=f"expired ({event.data['reason']}); backing up")
        reason = "expiry"
    manifest = deps.backups.back_up(target, deps.cloud.backup_source(target), reason=reason,
                                    backup_id=backup_id_for(event))
    return [deps.emit("backup.done", env=target, backup_id=manifest.backup_id, reason=reason,
                      size=manifest.size, sha256=manifest.sha256)]


def on_failure(event, reason: str, deps) -> list:
    # An expiring environment stays as it is: nothing is deleted without its backup.
    return [deps.emit("backup.failed", env=event.data["env"], step=NAME, reason=reason, cause_id=event.id)]
