"""A bus to test on: the in-memory broker (fast, virtual time) or a real RabbitMQ (real time).

The same flow tests run on both; only `settle` differs: the memory bus runs
until idle on the test's thread, RabbitMQ is polled until the condition holds.
"""
from __future__ import annotations

import uuid
from types import SimpleNamespace

from bus.ledger import Ledger
from bus.retry import RetryPolicy
from bus.worker import Worker
from core.audit import AuditTrail
from core.broker import event_message
from core.db import make_engine
from core.deps import Deps
from doppel import migrations
from tests.support.waiting import wait_for


def make_function(name, consumes, handle, key=None, on_failure=None, emits=()):
    """A function made in a test; `emits` is its EMITS (deps.emit refuses any other type)."""
    fn = SimpleNamespace(NAME=name, CONSUMES=consumes, EMITS=tuple(emits), handle=handle)
    if key:
        fn.idempotency_key = key
    if on_failure:
        fn.on_failure = on_failure
    return fn


class Reporter:
    def __init__(self):
        self.reports = []

    def report(self, message, *, tags, error=None):
        self.reports.append((message, tags))


class Bus:
    def __init__(self, kind: str, tmp_path, amqp_url: str | None = None, retry: RetryPolicy | None = None,
                 db_url: str | None = None):
        self.kind = kind
        self.db_url = db_url or f"sqlite:///{tmp_path / 'doppel.db'}"
        self.engine = make_engine(self.db_url)
        migrations.upgrade(self.engine)  # as a Doppel process makes it: one started on it later finds it current
        self.ledger = Ledger(self.engine)
        self.audit = AuditTrail(self.engine)
        self.deps = Deps(audit=self.audit)
        self.retry = retry or RetryPolicy(attempts=3, first_delay_ms=200, factor=2)
        self.reporter = Reporter()
        self.workers: list[Worker] = []
        self.brokers = []
        self.amqp_url = amqp_url
        self.prefix = uuid.uuid4().hex[:6]

    def broker(self):
        if self.kind == "memory":
            if not self.brokers:
                from bus.memory import MemoryBroker
                self.brokers.append(MemoryBroker(fast_forward=True))
            return self.brokers[0]
        from bus.rabbitmq import RabbitBroker
        broker = RabbitBroker(self.amqp_url)
        self.brokers.append(broker)
        return broker

    def worker(self, functions, lease_s=30.0, **options) -> Worker:
        worker = Worker(self.broker(), functions, self.ledger, self.deps, retry=self.retry,
                        lease_s=lease_s, prefetch=16, reporter=self.reporter, **options)
        worker.start()
        self.workers.append(worker)
        return worker

    def publish(self, *events):
        self.workers[0].broker.publish([event_message(e) for e in events])

    def settle(self, condition=lambda: True, timeout=20.0):
        """Wait until `condition()` holds (memory: run to idle first)."""
        def settled():
            if self.kind == "memory":
                self.brokers[0].run_until_idle(timeout=timeout)
            return condition()
        wait_for(settled, timeout, "the bus to settle with the condition met")

    def close(self):
        for worker in self.workers:
            worker.stop()
        for broker in self.brokers:
            broker.close()
