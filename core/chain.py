"""What the environment chain's functions share: finding the request's environment, compensation, and the
sweep that ends environments no work will move on.

Not a function itself: `functions/snapshot.py`, `clone.py` and `configure.py` use it.

An environment must never stay half-made. A step that cannot go on compensates
(`on_chain_failure`). The worker's re-drive brings back the event of a step whose
message was lost. What is left, an environment still requested, snapshotting,
cloning or configuring `bus.stuck_after` after its last transition with no
worker holding one of its keys and nothing in progress in the cloud, is failed
by `sweep_stuck_environments` through the same compensation, so its half-made
resources go, its requester hears `env.failed`, and its name is free again.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from core.cloud import CREATE_IN_PROGRESS, SNAPSHOT_IN_PROGRESS, TAG_ENV, TAG_KEY
from core.errors import PermanentError
from core.registry import CLONING, CONFIGURING, FAILED, REQUESTED, SNAPSHOTTING, Environment
from schemas.envelope import Event

log = logging.getLogger(__name__)

# The chain's functions, each keyed by the request id; and the step an environment in each state is at.
CHAIN_FUNCTIONS = ("snapshot", "clone", "configure")
STEP_OF = {REQUESTED: "snapshot", SNAPSHOTTING: "snapshot", CLONING: "clone", CONFIGURING: "configure"}
DEFAULT_STUCK_AFTER_S = 2 * 3600.0


def request_id(event) -> str:
    """The identity of an env.requested: its source and id, CloudEvents' de-duplication key."""
    return f"{event.source}/{event.id}"


def environment_of(event, deps) -> Environment:
    """The environment this chain event belongs to; permanent when the registry has no such request."""
    env = deps.registry.by_request(event.data["request"])
    if env is None:
        raise PermanentError(f"no environment was requested as {event.data['request']} "
                             f"(event {event.type} {event.id} for {event.data.get('env')})")
    return env


def compensate(env: Environment, step: str, reason: str, deps, cause_id: str) -> list:
    """Delete everything this request made, mark it failed with the reason, and say so.

    Found by tags, not by memory, so it also cleans up after a worker that died
    half-way. Another request's environment of the same name is never touched.
    """
    cloud = deps.cloud
    for resource in cloud.find_tagged({TAG_ENV: env.name, TAG_KEY: env.request_id}):
        log.info("compensation for %s: deleting %s %s", env.name, resource.kind, resource.name)
        cloud.delete_resource(resource, ignore_missing=True)
    stack = cloud.stack_status(env.name)
    if stack is not None and stack.tags.get(TAG_KEY) == env.request_id:
        cloud.delete_stack(env.name, ignore_missing=True)
    if env.state != FAILED:
        deps.registry.move(env, FAILED, event_id=cause_id, reason=f"{step}: {reason}")
    return [deps.emit("env.failed", env=env.name, production=env.production, request=env.request_id,
                      step=step, reason=reason, cause_id=cause_id)]


def on_chain_failure(step: str):
    """The `on_failure` of a chain function: compensate the environment the event belongs to."""
    def on_failure(event, reason: str, deps) -> list:
        env = deps.registry.by_request(event.data["request"]) if "request" in event.data \
            else deps.registry.by_request(request_id(event))
        if env is None:
            return []
        return compensate(env, step, reason, deps, event.id)
    return on_failure


def sweep_stuck_environments(deps, ledger, publish, lease_s: float) -> int:
    """Fail and clean up each environment stuck half-way; how many. A worker's sweep runs it (see module doc).

    The chain's keys of the environment are claimed first, so no handler of its chain runs while it is cleaned
    up, and a message of it that turns up later finds them done and makes nothing. `env.failed` is published
    before they are recorded done: if publishing fails, the next sweep does it all again.
    """
    section = (deps.config["bus"] if deps.config is not None else {}) or {}
    stuck_after = timedelta(seconds=section.get("stuck_after", DEFAULT_STUCK_AFTER_S))
    failed = 0
    for env in deps.registry.in_state(*STEP_OF):
        age = deps.clock() - env.updated_at
        keys = [(function, env.request_id) for function in CHAIN_FUNCTIONS]
        if age < stuck_after or ledger.held(keys) or _cloud_still_working(env, deps):
            continue
        owner = f"sweep.{uuid.uuid4().hex}"
        claims = ledger.claim_many([(function, key, owner, None) for function, key in keys], lease_s)
        # Claims are compared by value: the chain's functions import this module, and functions never import the bus.
        ours = [key for key, claim in zip(keys, claims) if claim.value == "run"]
        if any(claim.value == "busy" for claim in claims):  # a worker took one up meanwhile: it is not stuck
            for function, key in ours:
                ledger.fail(function, key, owner, "let go: a worker took the environment up")
            continue
        step = STEP_OF[env.state]
        reason = (f"stuck {env.state} for {_duration(age)} with no worker on it and nothing in progress in the "
                  "cloud (a lost message?); cleaned up by the sweep")
        log.warning("environment %s (request %s): %s", env.name, env.request_id, reason)
        cause = Event(type="env.requested", source="doppel/sweep", data={}, id=f"stuck:{env.request_id}",
                      correlationid=env.correlation_id or "")
        emitted = compensate(env, step, reason, deps.for_event(cause, "sweep", env.request_id), cause.id)
        publish(emitted)
        for function, key in ours:
            ledger.complete(function, key, owner, {"emitted": [[e.type, e.id] for e in emitted], "swept": reason})
        failed += 1
    return failed


def _cloud_still_working(env: Environment, deps) -> bool:
    """Whether the cloud is still taking the environment's snapshot or building its stack (poll's to finish);
    True when the cloud cannot say, so nothing is cleaned up on a guess."""
    try:
        if env.state in (REQUESTED, SNAPSHOTTING):
            return any(resource.kind == "snapshot" and
                       deps.cloud.snapshot_status(resource.id).status == SNAPSHOT_IN_PROGRESS
                       for resource in deps.cloud.find_tagged({TAG_ENV: env.name, TAG_KEY: env.request_id}))
        stack = deps.cloud.stack_status(env.name)
        return stack is not None and stack.tags.get(TAG_KEY) == env.request_id and stack.status == CREATE_IN_PROGRESS
    except Exception as exc:  # noqa: BLE001 - the cloud away: look again at the next sweep
        log.warning("environment %s looks stuck in %s, but the cloud cannot say whether it is still working on it "
                    "(%s); looking again at the next sweep", env.name, env.state, exc)
        return True


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else f"{seconds} s"
