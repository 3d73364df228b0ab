"""snapshot.done -> stack.ready: build the environment's stack from the snapshot.

The stack may take minutes (Heat); then `poll` emits stack.ready when it is complete.
"""
from core.chain import environment_of, on_chain_failure, sweep_stuck_environments
from core.cloud import Snapshot
from core.errors import PermanentError
from core.registry import CLONING, SNAPSHOTTING

NAME = "clone"
CONSUMES = "snapshot.done"
EMITS = ("stack.ready", "env.failed")


def idempotency_key(event) -> str:
    return event.data["request"]


def handle(event, deps) -> list:
    env = environment_of(event, deps)
    if env.state not in (SNAPSHOTTING, CLONING):
        return []
    env = deps.registry.move(env, CLONING, event_id=event.id)
    snapshot = Snapshot.from_dict(event.data["snapshot"])
    parameters = deps.config["productions"][env.production].get("parameters", {})
    stack = deps.cloud.create_stack(env.name, snapshot, parameters, env.request_id)
    if stack.failed:
        raise PermanentError(f"stack for {env.name} failed to create: {stack.status_reason}")
    if not stack.complete:
        return []
    return [deps.emit("stack.ready", env=env.name, request=env.request_id, stack=stack.to_dict())]


on_failure = on_chain_failure(NAME)
sweep = sweep_stuck_environments  # the worker runs it periodically, once for the three chain functions
