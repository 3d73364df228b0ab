"""Two scheduler services in one process on the in-memory bus and a real SQLite file, with short leases.

The fast companion of tests/integration/test_scheduler.py: the same service code,
no RabbitMQ. The lease's clock is the test's: it moves only when the test says, so
what a handover depends on (a release, an expiry, the safety margin) is decided by
the test, not by how busy the machine is.
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
from tests.support.state_db import migrated_engine
from tests.support.waiting import wait_for

pytestmark = pytest.mark.both_databases  # CI runs it on PostgreSQL too: two replicas, each on its own connections
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


class LeaseClock:
    """The lease's wall and monotonic time, moved only by the test (it starts at the real time, since the fires
    themselves are on the real clock and the lease's moments decide which of them are owed)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return LeaseClock()


@pytest.fixture
def world(tmp_path, clock, state_db_url):
    url = state_db_url or f"sqlite:///{tmp_path / 'doppel.db'}"
    engine = migrated_engine(url)
    broker = MemoryBroker()
    broker.declare([QueueSpec("seen", "classic", ("#",))])
    running = []

    def start(name):
        own = make_engine(url)  # each replica on its own connections, as on its own host
        service = SchedulerService(engine=own, broker=broker, registry=Registry(own), schedules=TICK, holder=name,
                                   timing=FAST, tick=0.25, source=f"doppel/scheduler-{name}", clock=clock,
                                   monotonic=clock)
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


def test_a_clean_stop_hands_over_at_the_next_poll_and_loses_no_scheduled_time(world, clock):
    # Given two services, one holding the lease, and the lease's clock standing still (the lease never expires)
    start, published, _ = world
    a, b = start("a"), start("b")
    wait_for(lambda: len(published()) >= 3, 10, "3 fires")
    holder, standby = (a, b) if a.service.active else (b, a)

    # When the holder stops cleanly (SIGTERM in production)
    holder.halt()

    # Then the standby took over at one of its polls, on the release alone (no lease time passed), and every
    # scheduled second was emitted exactly once
    wait_for(lambda: standby.service.active, 10, "the standby to take over")
    assert standby.service.lease.read().acquired_at == clock.now
    count = len(published())
    wait_for(lambda: len(published()) >= count + 3, 10, "3 more fires")
    standby.halt()
    events = published()
    assert len({e.id for e in events}) == len(events) == len(scheduled(events))
    assert contiguous(scheduled(events))


def test_a_stalled_holder_fences_itself_and_the_new_holder_loses_nothing(world, clock):
    # Given two services, one holding the lease
    start, published, _ = world
    a, b = start("a"), start("b")
    wait_for(lambda: len(published()) >= 2, 10, "2 fires")
    holder, standby = (a, b) if a.service.active else (b, a)

    # When the holder's renewal stalls (a paused VM, a stuck disk) while the lease's time runs past the holder's
    # safety margin (ttl 2 s - safety 0.5 s after its last renewal)
    lease, stalled, renew = holder.service.lease, threading.Event(), holder.service.lease._renew
    lease._renew = lambda: stalled.wait(30) and renew()  # fault injection: the real renewal, once let go
    clock.advance(1.6)

    # Then it fences itself (stops firing) before its lease expires, and the standby cannot take it yet
    wait_for(lambda: not holder.service.active, 10, "the stalled holder to stand by")
    old_source = holder.service.firer.source
    fired_by_old = len([e for e in published() if e.source == old_source])
    assert not standby.service.active

    # When the lease expires, the standby takes over and fires
    clock.advance(0.5)
    wait_for(lambda: standby.service.active, 10, "the standby to take over")
    count = len(published())
    wait_for(lambda: len(published()) >= count + 3, 10, "3 more fires")

    # Then the old holder fired nothing after it fenced itself, and no scheduled time was lost
    stalled.set()
    wait_for(lambda: lease._generation is None, 5, "the old holder to learn it lost the lease")
    events = published()
    assert len([e for e in events if e.source == old_source]) == fired_by_old
    assert len({e.id for e in events}) == len(events) == len(scheduled(events))
    assert contiguous(scheduled(events))
