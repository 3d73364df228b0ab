"""An embedded Doppel for a cloud driver's integration tests: one production, every function on the in-memory bus.

The openstack and aws test beds each describe their production (tests/integration/<cloud>/conftest.py) and
build this harness around it; the chain itself, the registry and the audit trail are the real ones.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

import functions
from core.broker import event_message
from core.cloud import TAG_ENV
from core.registry import ENDED, READY
from doppel.app import App
from doppel.cli.common import build_event
from doppel.config import parse_config
from tests.support.waiting import wait_for


def unique_env(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class EmbeddedDoppel:
    """Doppel as one process would run it, configured by `document`, its only production `production`."""

    settle_interval = 1.0  # how often settle() ticks the poller while a cloud works

    def __init__(self, document: Mapping, production: str):
        self.document = dict(document)
        self.production = production
        self.app = App(parse_config(self.document, None), role="test", fast_forward=True)
        self.worker = self.app.worker(functions.FUNCTIONS)
        self.worker.start()
        self.cloud = self.app.cloud

    def publish(self, event_type: str, event_id: str | None = None, **data):
        event = build_event(event_type, data, source="test", event_id=event_id)
        self.app.broker.publish([event_message(event)])
        self.app.broker.run_until_idle(timeout=120)
        return event

    def request(self, env: str, event_id: str | None = None):
        return self.publish("env.requested", event_id=event_id, env=env, production=self.production,
                            ttl_seconds=3600)

    def tick(self, target: str = "all") -> None:
        """What the scheduler does when notifications are off: a poll tick."""
        self.publish("poll.tick", target=target)

    def settle(self, env: str, *, tick: bool = True, seconds: float = 240, nudge: Callable[[], object] | None = None):
        """Wait until `env` is ready or ended, ticking the poller (or calling `nudge`) meanwhile."""
        def done():
            if nudge is not None:
                nudge()
            elif tick:
                self.tick()
            else:
                self.app.broker.run_until_idle(timeout=30)
            found = self.app.registry.latest(env)
            return found if found is not None and (found.state == READY or found.state in ENDED) else None
        return wait_for(done, seconds, f"env {env} ready or ended", interval=self.settle_interval)

    def events(self, event_type: str | None = None, correlation_id: str | None = None):
        return self.app.audit.events(event_type=event_type, correlation_id=correlation_id)

    def remove(self, env: str, leftovers: Callable[[str], dict], seconds: float = 180) -> None:
        """Clean up after a test, whatever state it left `env` in, and wait until `leftovers(env)` is empty."""
        self.cloud.delete_stack(env, ignore_missing=True)
        for resource in self.cloud.find_tagged({TAG_ENV: env}):
            self.cloud.delete_resource(resource, ignore_missing=True)
        wait_for(lambda: not leftovers(env), seconds, f"env {env} gone", interval=1)

    def close(self) -> None:
        self.app.close()
