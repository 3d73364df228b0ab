"""poll.tick -> snapshot.done / stack.ready / env.failed: finish the cloud's long operations.

Where the cloud's own notifications are not listened to, the scheduler's ticks
bring each snapshotting or cloning environment one step further once its cloud
operation is complete. Duplicates (a tick and a notification both) are absorbed
by the next function's ledger, which is keyed by the request.
"""
from core.chain import compensate
from core.cloud import TAG_ENV, TAG_KEY
from core.registry import CLONING, SNAPSHOTTING

NAME = "poll"
CONSUMES = "poll.tick"
EMITS = ("snapshot.done", "stack.ready", "env.failed")


def handle(event, deps) -> list:
    emitted = []
    for env in deps.registry.in_state(SNAPSHOTTING):
        for resource in deps.cloud.find_tagged({TAG_ENV: env.name, TAG_KEY: env.request_id}):
            if resource.kind != "snapshot":
                continue
            snapshot = deps.cloud.snapshot_status(resource.id)
            if snapshot.status == "COMPLETE":
                emitted.append(deps.emit("snapshot.done", env=env.name, production=env.production,
                                         request=env.request_id, snapshot=snapshot.to_dict()))
            elif snapshot.status == "FAILED":
                emitted += compensate(env, "snapshot", snapshot.status_reason or "snapshot failed", deps, event.id)
    for env in deps.registry.in_state(CLONING):
        stack = deps.cloud.stack_status(env.name)
        if stack is None or stack.tags.get(TAG_KEY) != env.request_id:
            continue
        if stack.complete:
            emitted.append(deps.emit("stack.ready", env=env.name, request=env.request_id, stack=stack.to_dict()))
        elif stack.failed:
            emitted += compensate(env, "clone", f"stack failed to create: {stack.status_reason}", deps, event.id)
    return emitted
