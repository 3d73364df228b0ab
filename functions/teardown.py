"""backup.done (of an expiring environment) -> env.deleted: delete the environment. Backup first, always.

Its logs are kept too, just before its stack goes: collected from the living environment,
masked and stored for their own retention (clouds/logs). A retry keeps them again under the
same key; a replay after the deletion finds the environment deleted and does nothing.
"""
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
    kept = deps.logs.keep(env, deps.cloud) if deps.logs is not None else None
    deps.cloud.delete_stack(env.name, ignore_missing=True)
    for resource in deps.cloud.find_tagged({TAG_ENV: env.name, TAG_KEY: env.request_id}):
        deps.cloud.delete_resource(resource, ignore_missing=True)
    if deps.scheduler is not None:
        deps.scheduler.cancel_expiry(env.name)
    logs = f"; logs kept until {kept.kept_until:%Y-%m-%d %H:%M} UTC" if kept is not None else ""
    deps.registry.move(env, DELETED, event_id=event.id, reason=f"backed up as {event.data['backup_id']}{logs}")
    return [deps.emit("env.deleted", env=env.name, backup_id=event.data["backup_id"])]
