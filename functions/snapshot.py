"""env.requested -> snapshot.done: register the environment and snapshot its production.

With a data version (a backup id, `env create --data-version`), the snapshot is made
from that backup instead of production as it is now.

A replay of the same request, or a request for a name that is already living, makes
nothing new; a replay of a request that failed (after its cause was fixed) tries again. A cloud
snapshot that takes minutes is finished by `poll`.

Whoever asked always hears the outcome: a request refused here (an unknown production, a
TTL over `environments.max_ttl`, a name already living) ends in `env.failed` with the
reason, which `notify` posts to the request's `reply_to`.
"""
import logging

from core.chain import on_chain_failure, request_id, sweep_stuck_environments
from core.errors import PermanentError
from core.registry import FAILED, REQUESTED, SNAPSHOTTING
from schemas.config import ttl_limits, ttl_refusal

NAME = "snapshot"
CONSUMES = "env.requested"
EMITS = ("snapshot.done", "env.failed")

log = logging.getLogger(__name__)


def idempotency_key(event) -> str:
    return request_id(event)


def handle(event, deps) -> list:
    data = event.data
    if data["production"] not in deps.config["productions"]:
        known = ", ".join(sorted(deps.config["productions"])) or "none"
        raise PermanentError(f"production {data['production']!r} is not described in doppel.yaml "
                             f"(productions: {known})")
    default_ttl, max_ttl = ttl_limits(deps.config["environments"], data["production"])
    ttl = data.get("ttl_seconds") or (int(default_ttl) if default_ttl else None)
    env, created = deps.registry.request(
        name=data["env"], request_id=request_id(event), production=data["production"], owner=data.get("owner"),
        data_version=data.get("data_version"), ttl_seconds=ttl,
        correlation_id=event.correlationid, reply_to=data.get("reply_to"))
    if not created and env.request_id != request_id(event):
        # That name is taken by a living environment: this request makes nothing, and its requester hears so.
        return [refused(event, deps, f"the name {env.name} is taken by a living environment ({env.state}, from "
                                     f"{env.production}, requested as {env.request_id}), which is left as it is; "
                                     "ask again under another name, or delete that one first")]
    if env.state in (REQUESTED, FAILED):
        # Nothing made yet: judged by today's limit (a re-run further on is not, so a limit lowered meanwhile
        # never fails an environment already being made). Its compensation marks it failed and says why.
        refusal = ttl_refusal(env.ttl_seconds, max_ttl)
        if refusal:
            raise PermanentError(f"environment {data['env']}: {refusal}")
    if env.state == FAILED and deps.registry.living(env.name) is None:
        # The same request replayed after its failure was fixed: the same environment tries again.
        env = deps.registry.move(env, REQUESTED, event_id=event.id, reason="replayed after failure")
    if env.state not in (REQUESTED, SNAPSHOTTING):
        return []  # a replay after the chain moved on
    env = deps.registry.move(env, SNAPSHOTTING, event_id=event.id)
    version = env.data_version
    if version and version != "latest":
        # A copy of production as a backup holds it: that backup's files and databases, anonymised as any.
        snapshot = deps.cloud.snapshot(env.production, env.name, env.request_id, restore=lambda root, databases:
                                       deps.backups.restore(version, root, databases=databases))
    else:
        snapshot = deps.cloud.snapshot(env.production, env.name, env.request_id)
    if snapshot.status != "COMPLETE":
        return []  # poll emits snapshot.done when the cloud says it is complete
    return [deps.emit("snapshot.done", env=env.name, production=env.production, request=env.request_id,
                      snapshot=snapshot.to_dict())]


def refused(event, deps, reason: str):
    """The env.failed of a request that has no environment of its own; it carries the request's reply_to."""
    data = event.data
    return deps.emit("env.failed", env=data["env"], production=data["production"], request=request_id(event),
                     step=NAME, reason=reason, cause_id=event.id, reply_to=data.get("reply_to"))


_compensate = on_chain_failure(NAME)


def on_failure(event, reason: str, deps) -> list:
    """After the last attempt, or at once for a permanent error: compensate, and tell the requester why.

    A request that failed before it was registered is registered now, as failed with the
    reason, when its name is free (so `doppel env show NAME` says why, and a replay after
    the fix tries the same environment again); when it cannot be, its env.failed carries
    the reply_to itself.
    """
    if deps.registry.by_request(request_id(event)) is None and not _register(event, deps):
        return [refused(event, deps, reason)]
    return _compensate(event, reason, deps)


def _register(event, deps) -> bool:
    """Register the request's environment (then failed by compensation); False when its name is taken."""
    data = event.data
    try:
        env, _created = deps.registry.request(
            name=data["env"], request_id=request_id(event), production=data["production"],
            owner=data.get("owner"), data_version=data.get("data_version"), ttl_seconds=data.get("ttl_seconds"),
            correlation_id=event.correlationid, reply_to=data.get("reply_to"))
    except Exception:  # noqa: BLE001 - the requester must still hear of the failure
        log.exception("snapshot: could not register the failed request %s for %s", event.id, data["env"])
        return False
    return env.request_id == request_id(event)


sweep = sweep_stuck_environments  # the worker runs it periodically, once for the three chain functions
