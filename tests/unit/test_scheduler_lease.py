"""The scheduler lease on a real SQLite file, with clocks the test moves; and which missed fires are owed."""
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.firing import plan
from scheduler.lease import Lease, LeaseTiming
from tests.support.state_db import migrated_engine


class Clock:
    """Wall and monotonic time that only move when the test says so."""

    def __init__(self, start=1_700_000_000.0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def engine(tmp_path, state_db_url):
    engine = migrated_engine(state_db_url or f"sqlite:///{tmp_path / 'doppel.db'}")
    yield engine
    engine.dispose()


def lease(engine, clock, holder):
    return Lease(engine, holder, LeaseTiming(), clock=clock, monotonic=clock)


def test_one_holder_at_a_time_and_a_standby_takes_over_after_expiry(engine):
    clock = Clock()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.step() and a.valid()
    assert not b.step()
    clock.advance(2)
    assert a.step()  # renewed
    clock.advance(5.5)  # a is dead: no renewal for 5.5 s, its lease expires 6 s after the last one
    assert not a.valid()  # fenced itself a second before it could be taken over
    assert not b.step()
    clock.advance(1)
    assert b.step() and b.valid()
    assert b.read().holder == "b" and b.read().generation == 2
    assert not a.step() and not a.valid()  # a wakes up: its renewal fails, and it does not take it back


def test_a_released_lease_is_taken_at_the_next_poll(engine):
    clock = Clock()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.step()
    a.release()
    clock.advance(0.5)
    assert b.step()
    assert b.acquisition.previous.holder == "a" and b.acquisition.previous.released


def test_two_standbys_never_both_win(engine):
    clock = Clock()
    a = lease(engine, clock, "a")
    assert a.step()
    clock.advance(10)
    standbys = [lease(engine, clock, f"s{i}") for i in range(5)]
    assert sum(s.step() for s in standbys) == 1


def test_a_quick_handover_owes_the_fires_since_the_dead_holder_last_renewed(engine):
    clock = Clock()
    timing = LeaseTiming()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    a.step()
    last_renewal = clock.now
    clock.advance(6.5)
    assert b.step()
    assert b.acquisition.owed_since(timing) == last_renewal - timing.renew_every


def test_a_lease_abandoned_for_long_owes_nothing_before_the_new_holder(engine):
    clock = Clock()
    timing = LeaseTiming()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    a.step()
    a.release()
    clock.advance(60)
    assert b.step()
    assert b.acquisition.owed_since(timing) == clock.now


T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def seconds(*offsets):
    return [T0 + timedelta(seconds=s) for s in offsets]


def test_owed_times_each_fire():
    chosen = plan(seconds(1, 2, 3, 4), T0 + timedelta(seconds=4.2), 3600, owed_since=T0)
    assert chosen.fire == seconds(1, 2, 3, 4) and not chosen.coalesced


def test_downtime_backlog_fires_once_as_its_earliest_time():
    chosen = plan(seconds(1, 2, 3, 4), T0 + timedelta(seconds=4.2), 3600, owed_since=T0 + timedelta(seconds=4.1))
    assert chosen.fire == seconds(1) and chosen.coalesced == seconds(2, 3, 4)


def test_times_past_the_grace_are_dropped_and_the_rest_coalesced():
    chosen = plan(seconds(0, 100, 200), T0 + timedelta(seconds=250), 120, owed_since=T0 + timedelta(seconds=240))
    assert chosen.too_late == seconds(0, 100) and chosen.fire == seconds(200) and chosen.coalesced == []
    chosen = plan(seconds(0, 100, 200), T0 + timedelta(seconds=250), 160, owed_since=T0 + timedelta(seconds=240))
    assert chosen.fire == seconds(100) and chosen.coalesced == seconds(200)


def test_no_grace_means_never_too_late():
    chosen = plan(seconds(0), T0 + timedelta(days=3), None, owed_since=T0 + timedelta(days=3))
    assert chosen.fire == seconds(0)
