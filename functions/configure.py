"""stack.ready -> env.ready: rewrite the clone's configuration for its new role.

Endpoints from the stack's outputs, fresh credentials (never production's), crons
off, personal data anonymised, as the production's clone policy says.
"""
import secrets

from core import secrets as masking
from core.chain import environment_of, on_chain_failure, sweep_stuck_environments
from core.cloud import Stack
from core.registry import CLONING, CONFIGURING, READY

NAME = "configure"
CONSUMES = "stack.ready"
EMITS = ("env.ready", "env.failed")


def idempotency_key(event) -> str:
    return event.data["request"]


def handle(event, deps) -> list:
    env = environment_of(event, deps)
    if env.state == READY:
        # Run again after the move to ready (the key is the request's, so no other stack.ready gets here): its
        # worker died before env.ready was sent. Say it again, with the same event id, so whoever heard it the
        # first time does not hear it twice.
        return ready(env, deps)
    if env.state not in (CLONING, CONFIGURING):
        return []
    env = deps.registry.move(env, CONFIGURING, event_id=event.id)
    policy = deps.config["productions"][env.production].get("clone", {})
    fresh = {name: secrets.token_urlsafe(24) for name in policy.get("secrets", [])}
    if deps.logs is not None:  # their prints, so what the env logs is printed with them masked
        deps.logs.remember_secrets(env.request_id, fresh)
    masking.remember(fresh.values())  # from here on, this process's logs, chat and reports mask them
    endpoints = deps.cloud.configure(env.name, Stack.from_dict(event.data["stack"]), policy, fresh)
    # Endpoints go into the registry, env.ready and chat: a stack output that carries a credential (this
    # environment's, or a database URL's password) is masked, never published. Names are kept: auth_url is one.
    endpoints = masking.scrub(endpoints, set(fresh.values()), by_name=False)
    env = deps.registry.move(env, READY, event_id=event.id, endpoints=endpoints,
                             expires_at=deps.registry.expiry_for(env))
    return ready(env, deps)


def ready(env, deps) -> list:
    """Schedule the environment's expiry (safe to repeat) and say it is ready."""
    if env.expires_at and deps.scheduler is not None:
        deps.scheduler.schedule_expiry(env.name, env.expires_at)
    return [deps.emit("env.ready", env=env.name, request=env.request_id, endpoints=env.endpoints,
                      expires_at=env.expires_at.isoformat() if env.expires_at else None)]


on_failure = on_chain_failure(NAME)
sweep = sweep_stuck_environments  # the worker runs it periodically, once for the three chain functions
