"""Two scheduler services in one process on the in-memory bus and a real SQLite file, with short leases.

The fast companion of tests/integration/test_scheduler.py: the same service code,
no RabbitMQ, a handover in about a second.
"""
import threading
import time
from datetime import timedelta

import pytest

from bus.memory import MemoryBroker
from core.broker import QueueSpec
from core.db import make_engine
from core.registry import Registry
from scheduler.lease import LeaseTiming
from scheduler.service import SchedulerService
from schemas.envelope import Event, parse_time
from tests.support.waiting import wait_for

FAST = LeaseTiming(ttl=2.0, renew_every=0.5, poll_every=0.25, safety=0.5, handover_window=1.0)
TICK = [{"id": "tick", "every": 1.0, "type": "poll.tick", "data": {}, "tags": [], "timezone": "UTC",
         "misfire_grace": 3600.0}]


class Running:
    def __init__(self, service: SchedulerService):
        self.service, self.stop = service, threading.Event()
        self.thread = threading.Thread(target=service.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def halt(self):
        self.stop.set()
        self.service.stop_soon()
        self.thread.join(timeout=10)


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'doppel.db'}")
    broker = MemoryBroker()
    broker.declare([QueueSpec("seen", "classic", ("#",))])
    registry = Registry(engine)
    running = []

    def start(name):
        service = SchedulerService(engine=engine, broker=broker, registry=registry, schedules=TICK, holder=name,
                                   timing=FAST, tick=0.25, source=f"doppel/scheduler-{name}")
        running.append(Running(service))
        return running[-1]

    seen = []

    def published():
        while (delivery := broker.get("seen")) is not None:
            seen.append(Event.from_json(delivery.message.body))
            delivery.ack()
        return seen

    yield start, published, engine
    for r in running:
        r.halt()


def scheduled(events):
    return sorted({parse_time(e.data["scheduled_for"]) for e in events})


def contiguous(times):
    return times == [times[0] + timedelta(seconds=i) for i in range(len(times))]


def test_a_clean_stop_hands_over_within_a_second_and_loses_no_scheduled_time(world):
    # Given two services, one holding the lease
    start, published, _ = world
    a, b = start("a"), start("b")
    wait_for(lambda: len(published()) >= 3, 10, "3 fires")
    holder, standby = (a, b) if a.service.active else (b, a)

    # When the holder stops cleanly (SIGTERM in production)
    holder.halt()
    stopped = time.monotonic()
    wait_for(lambda: standby.service.active, 3, "the standby to take over")
    took = time.monotonic() - stopped
    count = len(published())
    wait_for(lambda: len(published()) >= count + 3, 10, "3 more fires")
    standby.halt()

    # Then it took over at its next poll, and every scheduled second was emitted exactly once
    assert took < 1.0
    events = published()
    assert len({e.id for e in events}) == len(events) == len(scheduled(events))
    assert contiguous(scheduled(events))


def test_a_stalled_holder_fences_itself_and_the_new_holder_loses_nothing(world):
    # Given two services, one holding the lease
    start, published, _ = world
    a, b = start("a"), start("b")
    wait_for(lambda: len(published()) >= 2, 10, "2 fires")
    holder, standby = (a, b) if a.service.active else (b, a)

    # When the holder's renewal stalls past its lease (as for a paused VM or a stuck disk)
    lease = holder.service.lease
    renew = lease._renew
    lease._renew = lambda: time.sleep(3) or renew()  # fault injection: the real renewal, 3 s late
    wait_for(lambda: standby.service.active, 5, "the standby to take over")
    taken = time.time()
    assert not holder.service.active, "the stalled holder fenced itself before the takeover"
    count = len(published())
    wait_for(lambda: len(published()) >= count + 3, 10, "3 more fires")

    # Then the old holder fired nothing after it lost the lease, and no scheduled time was lost
    wait_for(lambda: lease._generation is None, 5, "the old holder to learn it lost the lease")
    events = published()
    old_source = holder.service.firer.source
    assert not [e for e in events if e.source == old_source and e.time.timestamp() > taken + 0.1]
    assert contiguous(scheduled(events))
