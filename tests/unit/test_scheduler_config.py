"""`schedules:` validation at start-up, and the ids and data of what a fire emits."""
from datetime import datetime, timedelta, timezone

import pytest

from core.errors import ConfigError
from core.registry import READY, Registry
from doppel.config import parse_config
from scheduler.firing import expiry_event, expiry_id, fire_id, schedule_event
from scheduler.jobs import JobSpec
from schemas.envelope import derived_id
from schemas.events import validate_in
from tests.support.state_db import migrated_engine

NIGHTLY = {"id": "nightly-backup", "cron": "0 2 * * *", "timezone": "Europe/Paris", "type": "backup.due",
           "data": {"env": "shop"}}
POLL = {"id": "poll", "every": "30s", "type": "poll.tick"}


def schedules(*entries):
    return parse_config({"schedules": list(entries)}, None)["schedules"]


def error_of(*entries) -> str:
    with pytest.raises(ConfigError) as caught:
        schedules(*entries)
    return str(caught.value)


# -- validation -------------------------------------------------------------------------
def test_the_issue_example_loads_with_defaults():
    loaded = schedules(NIGHTLY, POLL)
    assert loaded[0]["timezone"] == "Europe/Paris" and loaded[0]["misfire_grace"] == 3600.0
    assert loaded[1]["every"] == 30.0 and loaded[1]["timezone"] == "UTC" and loaded[1]["data"] == {}


def test_invalid_cron_names_the_job_and_how_to_write_one():
    message = error_of({**NIGHTLY, "cron": "0 25 * * *"})
    assert "nightly-backup" in message and "'0 25 * * *'" in message and "five fields" in message


def test_cron_with_four_fields_names_the_job():
    message = error_of({**NIGHTLY, "cron": "0 2 * *"})
    assert "job 'nightly-backup'" in message and "Wrong number of fields" in message


def test_unknown_time_zone_names_the_job():
    message = error_of({**NIGHTLY, "timezone": "Europe/Pari"})
    assert "job 'nightly-backup'" in message and "unknown time zone 'Europe/Pari'" in message


def test_unknown_event_type_names_the_job_and_lists_the_known_ones():
    message = error_of({**NIGHTLY, "type": "backup.dew"})
    assert "job 'nightly-backup'" in message and "'backup.dew'" in message and "backup.due" in message


def test_data_that_fails_the_type_schema_names_the_job_and_the_field():
    message = error_of({**NIGHTLY, "data": {}})
    assert "job 'nightly-backup'" in message and "backup.due" in message and "env" in message


def test_data_may_not_carry_the_fields_the_scheduler_sets():
    message = error_of({**NIGHTLY, "data": {"env": "shop", "late_seconds": 3}})
    assert "job 'nightly-backup'" in message and "late_seconds is set by the scheduler" in message


def test_exactly_one_of_cron_or_every():
    assert "exactly one of cron" in error_of({**POLL, "cron": "* * * * *"})
    assert "exactly one of cron" in error_of({"id": "poll", "type": "poll.tick"})


def test_intervals_shorter_than_a_second_are_refused():
    assert "too short" in error_of({**POLL, "every": "500ms"})


def test_job_ids_are_unique():
    assert "'poll' used more than once" in error_of(POLL, POLL)


def test_errors_are_keyed_by_job_id_not_position():
    assert "schedules.poll.every" in error_of(NIGHTLY, {**POLL, "every": "soon"})


def test_ids_that_could_clash_with_expiry_jobs_are_refused():
    assert "schedules" in error_of({**POLL, "id": "expiry:shop"})


# -- triggers ----------------------------------------------------------------------------
def test_cron_fires_at_local_time_in_its_time_zone():
    trigger = JobSpec.from_config(schedules(NIGHTLY)[0]).trigger()
    winter = trigger.get_next_fire_time(None, datetime(2025, 1, 10, tzinfo=timezone.utc))
    summer = trigger.get_next_fire_time(None, datetime(2025, 7, 10, tzinfo=timezone.utc))
    assert winter.astimezone(timezone.utc) == datetime(2025, 1, 10, 1, 0, tzinfo=timezone.utc)
    assert summer.astimezone(timezone.utc) == datetime(2025, 7, 10, 0, 0, tzinfo=timezone.utc)


def test_interval_times_do_not_depend_on_when_the_scheduler_started():
    trigger = JobSpec.from_config(schedules(POLL)[0]).trigger()
    a = trigger.get_next_fire_time(None, datetime(2025, 3, 1, 12, 0, 7, 123, tzinfo=timezone.utc))
    b = trigger.get_next_fire_time(None, datetime(2025, 3, 1, 12, 0, 29, tzinfo=timezone.utc))
    assert a == b == datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone.utc)


# -- ids and data ------------------------------------------------------------------------
def test_a_fire_id_is_derived_from_job_id_and_scheduled_time():
    at = datetime(2025, 3, 1, 1, 0, tzinfo=timezone.utc)
    assert fire_id("nightly-backup", at) == derived_id("schedule", "nightly-backup", "2025-03-01T01:00:00Z")
    assert fire_id("nightly-backup", at) == fire_id("nightly-backup", at.astimezone(timezone(timedelta(hours=1))))
    assert fire_id("nightly-backup", at) != fire_id("nightly-backup", at + timedelta(days=1))
    assert fire_id("nightly-backup", at) != fire_id("other", at)


def test_two_fires_of_the_same_time_are_the_same_event_whenever_they_happen():
    job = JobSpec.from_config(schedules(NIGHTLY)[0])
    at = datetime(2025, 3, 1, 1, 0, tzinfo=timezone.utc)
    on_time = schedule_event(job, at, at + timedelta(milliseconds=3))
    late = schedule_event(job, at, at + timedelta(minutes=40))
    assert on_time.id == late.id
    assert late.data == {"env": "shop", "job": "nightly-backup", "scheduled_for": "2025-03-01T01:00:00Z",
                         "late_seconds": 2400.0}
    assert on_time.data["late_seconds"] == 0.003
    assert validate_in(late.type, late.data) == {}


def test_expiry_id_is_the_same_from_the_date_job_and_the_safety_net(tmp_path):
    registry = Registry(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    env, _ = registry.request(name="perf-test", request_id="doppel/cli/42", production="shop", ttl_seconds=5,
                              correlation_id="chain-1")
    expires = datetime(2025, 3, 1, 1, 0, 5, 250000, tzinfo=timezone.utc)
    for state in ("snapshotting", "cloning", "configuring"):
        env = registry.move(env, state)
    env = registry.move(env, READY, expires_at=expires)
    event = expiry_event(env, expires + timedelta(seconds=2))
    assert event.id == expiry_id("doppel/cli/42", env.expires_at) == derived_id(
        "expiry", "doppel/cli/42", "2025-03-01T01:00:05.250000Z")
    assert event.correlationid == "chain-1"
    assert event.data == {"env": "perf-test", "reason": "ttl", "job": "expiry:perf-test",
                          "scheduled_for": "2025-03-01T01:00:05.250000Z", "late_seconds": 2.0}
    assert validate_in("env.expired", event.data) == {}
