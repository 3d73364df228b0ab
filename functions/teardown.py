"""backup.done (of an expiring environment) -> env.deleted: delete the environment. Backup first, always."""
from core.cloud import TAG_ENV, TAG_KEY
from core.registry import DELETED, EXPIRING

NAME = "teardown"
CONSUMES = "backup.done"
EMITS = ("env.deleted",)


def idempotency_key(event) -> str:
    return f"{event.data['env']}:{event.data['backup_id']}"


def handle(event, deps) -> list:
    if event.data["reason"] != "expiry":
        return []  # a routine backup: nothing to tear down
    env = deps.registry.living(event.data["env"])
    if env is None or env.state != EXPIRING:
        return []  # already deleted (a replay), or not ours to delete
    deps.cloud.delete_stack(env.name, ignore_missing=True)
    for resource in deps.cloud.find_tagged({TAG_ENV: env.name, TAG_KEY: env.request_id}):
        deps.cloud.delete_resource(resource, ignore_missing=True)
    if deps.scheduler is not None:
        deps.scheduler.cancel_expiry(env.name)
    deps.registry.move(env, DELETED, event_id=event.id, reason=f"backed up as {event.data['backup_id']}")
    return [deps.emit("env.deleted", env=env.name, backup_id=event.data["backup_id"])]
