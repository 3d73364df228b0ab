"""`deps.scheduler` from any process: TTL rows, and pauses that hold fires by their scheduled time."""
from datetime import datetime, timezone

import pytest

from scheduler.control import Scheduler
from scheduler.jobs import JobSpec
from scheduler.selectors import SelectorError, normalize
from tests.support.state_db import migrated_engine

SCHEDULES = [
    {"id": "nightly-backup", "cron": "0 2 * * *", "timezone": "Europe/Paris", "type": "backup.due",
     "data": {"env": "shop"}, "tags": ["backup"], "misfire_grace": 3600.0},
    {"id": "dr-sync", "every": 900.0, "type": "sync.due", "data": {"production": "shop"}, "tags": ["dr"],
     "misfire_grace": 3600.0},
    {"id": "blog-sync", "every": 900.0, "type": "sync.due", "data": {"production": "blog"}, "tags": ["dr"],
     "misfire_grace": 3600.0},
    {"id": "poll", "every": 30.0, "type": "poll.tick", "data": {}, "tags": [], "misfire_grace": 3600.0},
]
FAILOVER = {"types": ["sync.due", "backup.due"], "production": "shop"}


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def control(tmp_path, clock, state_db_url):
    return Scheduler(migrated_engine(state_db_url or f"sqlite:///{tmp_path / 'doppel.db'}"), SCHEDULES, clock=clock)


def job(control, job_id) -> JobSpec:
    return control.job(job_id)


def test_failover_pause_holds_shops_sync_and_backup_only(control, clock):
    control.pause_jobs(FAILOVER, reason="failover")
    held = {v.spec.id for v in control.jobs() if v.pause}
    assert held == {"nightly-backup", "dr-sync"}
    assert control.pause_covering(job(control, "dr-sync"), clock.now + 1).reason == "failover"


def test_resume_does_not_release_a_time_that_fell_inside_the_pause(control, clock):
    paused_at = clock.now
    control.pause_jobs(FAILOVER, reason="failover")
    clock.now += 600
    control.resume_jobs(FAILOVER)
    clock.now += 1
    sync = job(control, "dr-sync")
    assert control.pause_covering(sync, paused_at + 300) is not None  # missed while paused: stays unfired
    assert control.pause_covering(sync, paused_at - 1) is None  # due before the pause: fires
    assert control.pause_covering(sync, clock.now + 5) is None  # next scheduled time: fires


def test_a_fire_running_late_after_a_pause_began_is_held(control, clock):
    due = clock.now
    clock.now += 0.5
    control.pause_jobs({"jobs": ["poll"]}, reason="maintenance")
    assert control.pause_covering(job(control, "poll"), due, clock.now) is not None


def test_pausing_alike_twice_is_one_pause_and_one_resume_lifts_it(control):
    first = control.pause_jobs(FAILOVER, reason="failover")
    again = control.pause_jobs({"production": "shop", "types": ["backup.due", "sync.due"]}, reason="failover")
    assert first.id == again.id and len(control.pauses()) == 1
    assert len(control.resume_jobs(FAILOVER)) == 1 and control.pauses() == []


def test_a_resume_lifts_only_its_own_pause(control):
    control.pause_jobs(FAILOVER, reason="failover")
    control.pause("dr-sync")
    control.resume("dr-sync")
    assert [p.reason for p in control.pauses()] == ["failover"]
    assert {v.spec.id for v in control.jobs() if v.pause} == {"nightly-backup", "dr-sync"}


def test_command_line_words_select_by_id_tag_type_and_production(control):
    assert normalize("dr-sync") == {"jobs": ["dr-sync"]}
    assert normalize("tag:dr") == {"tags": ["dr"]}
    assert normalize("type:sync.due") == {"types": ["sync.due"]}
    assert normalize("production:shop") == {"production": "shop"}
    assert normalize("expiry:perf-test") == {"jobs": ["expiry:perf-test"]}
    control.pause("tag:dr")
    assert {v.spec.id for v in control.jobs() if v.pause} == {"dr-sync", "blog-sync"}


def test_selectors_that_name_nothing_are_refused():
    with pytest.raises(SelectorError, match="every job"):
        normalize({})
    with pytest.raises(SelectorError, match="unknown selector key"):
        normalize({"type": ["sync.due"]})


def test_schedule_expiry_moves_and_cancel_forgets(control):
    control.schedule_expiry("perf-test", datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc))
    control.schedule_expiry("perf-test", datetime(2025, 3, 1, 13, 0, tzinfo=timezone.utc))
    [expiry] = control.expiries()
    assert expiry.env == "perf-test" and expiry.at == datetime(2025, 3, 1, 13, 0, tzinfo=timezone.utc).timestamp()
    assert job(control, "expiry:perf-test").type == "env.expired"
    assert control.cancel_expiry("perf-test") and not control.cancel_expiry("perf-test")
    assert control.expiries() == []


def test_a_fired_expiry_is_not_pending_but_a_rescheduled_one_is(control):
    at = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    control.schedule_expiry("perf-test", at)
    control.mark_expiry_fired("perf-test", at.timestamp())
    assert control.expiries() == []
    control.schedule_expiry("perf-test", datetime(2025, 3, 2, 12, 0, tzinfo=timezone.utc))
    assert len(control.expiries()) == 1


def test_naive_expiry_times_are_refused(control):
    with pytest.raises(ValueError, match="no time zone"):
        control.schedule_expiry("perf-test", datetime(2025, 3, 1, 12, 0))


def test_history_older_than_the_horizon_is_pruned_and_what_is_in_force_is_kept(control, clock):
    at = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    control.schedule_expiry("old", at)
    control.mark_expiry_fired("old", at.timestamp())
    control.schedule_expiry("pending", at)
    control.pause_jobs({"jobs": ["poll"]}, reason="old")
    control.resume_jobs({"jobs": ["poll"]})
    control.pause_jobs(FAILOVER, reason="failover")
    clock.now += 100
    assert control.prune(older_than=clock.now) == 2
    assert [e.env for e in control.expiries(pending_only=False)] == ["pending"]
    assert [p.reason for p in control.pauses(include_lifted=True)] == ["failover"]
