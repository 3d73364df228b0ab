"""backup.done -> backup.pruned: delete the backups of that environment the retention policy does not keep.

The newest verified backup is never deleted, whatever the policy says. Kept logs of deleted
environments whose own retention (logs.retention) ran out are deleted here too.
"""
NAME = "prune"
CONSUMES = "backup.done"
EMITS = ("backup.pruned",)


def idempotency_key(event) -> str:
    return f"{event.data['env']}:{event.data['backup_id']}"


def handle(event, deps) -> list:
    result = deps.backups.prune(event.data["env"])
    if deps.logs is not None:
        deps.logs.prune()
    return [deps.emit("backup.pruned", env=event.data["env"], removed=[m.backup_id for m in result.removed],
                      kept=len(result.kept))]
