"""What the environment chain's functions share: finding the request's environment, and compensation.

Not a function itself: `functions/snapshot.py`, `clone.py` and `configure.py` use it.
"""
from __future__ import annotations

import logging

from core.cloud import TAG_ENV, TAG_KEY
from core.errors import PermanentError
from core.registry import FAILED, Environment

log = logging.getLogger(__name__)


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
