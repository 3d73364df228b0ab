"""env.requested -> snapshot.done: register the environment and snapshot its production.

A replay of the same request, or a request for a name that is already living, makes
nothing new; a replay of a request that failed (after its cause was fixed) tries again. A cloud snapshot that takes minutes is finished by `poll`.
"""
from doppel.chain import on_chain_failure, request_id, sweep_stuck_environments
from doppel.errors import PermanentError
from doppel.registry import FAILED, REQUESTED, SNAPSHOTTING

NAME = "snapshot"
CONSUMES = "env.requested"
EMITS = ("snapshot.done", "env.failed")


def idempotency_key(event) -> str:
    return request_id(event)


def handle(event, deps) -> list:
    data = event.data
    if data["production"] not in deps.config["productions"]:
        known = ", ".join(sorted(deps.config["productions"])) or "none"
        raise PermanentError(f"production {data['production']!r} is not described in doppel.yaml "
                             f"(productions: {known})")
    env, created = deps.registry.request(
        name=data["env"], request_id=request_id(event), production=data["production"], owner=data.get("owner"),
        data_version=data.get("data_version"), ttl_seconds=data.get("ttl_seconds"),
        correlation_id=event.correlationid, reply_to=data.get("reply_to"))
    if not created and env.request_id != request_id(event):
        return []  # that name is taken by a living environment: this request makes nothing
    if env.state == FAILED and deps.registry.living(env.name) is None:
        # The same request replayed after its failure was fixed: the same environment tries again.
        env = deps.registry.move(env, REQUESTED, event_id=event.id, reason="replayed after failure")
    if env.state not in (REQUESTED, SNAPSHOTTING):
        return []  # a replay after the chain moved on
    env = deps.registry.move(env, SNAPSHOTTING, event_id=event.id)
    snapshot = deps.cloud.snapshot(env.production, env.name, env.request_id)
    if snapshot.status != "COMPLETE":
        return []  # poll emits snapshot.done when the cloud says it is complete
    return [deps.emit("snapshot.done", env=env.name, production=env.production, request=env.request_id,
                      snapshot=snapshot.to_dict())]


on_failure = on_chain_failure(NAME)
sweep = sweep_stuck_environments  # the worker runs it periodically, once for the three chain functions
