"""restore.requested -> restore.done: stream a backup back into an environment, checking its sha256."""
NAME = "restore"
CONSUMES = "restore.requested"
EMITS = ("restore.done", "restore.failed")



def handle(event, deps) -> list:
    data = event.data
    target = deps.cloud.restore_target(data["env"], production=data.get("production"))
    databases = deps.cloud.database_targets(data["env"], data["production"]) if data.get("production") else None
    deps.backups.restore(data["backup_id"], target, databases=databases)
    return [deps.emit("restore.done", backup_id=data["backup_id"], env=data["env"])]


def on_failure(event, reason: str, deps) -> list:
    return [deps.emit("restore.failed", env=event.data["env"], step=NAME, reason=reason, cause_id=event.id)]
