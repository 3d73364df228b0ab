"""Retention over simulated calendars. Expected sets are written out by hand from a calendar, not computed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest

from clouds.backups.retention import RetentionPolicy, select_to_keep


@dataclass(frozen=True)
class Backup:
    backup_id: str
    created: datetime
    verified: bool = False


def daily_backups(first: date, last: date, at=(3, 15), verified: set[date] = frozenset()) -> list[Backup]:
    days = (last - first).days + 1
    out = []
    for i in range(days):
        day = first + timedelta(days=i)
        when = datetime(day.year, day.month, day.day, *at, tzinfo=timezone.utc)
        out.append(Backup(f"{when:%Y%m%dT%H%M%SZ}-000000", when, day in verified))
    return out


def days_of(backups) -> list[date]:
    return sorted(b.created.date() for b in backups)


def test_a_year_of_daily_backups_keeps_exactly_the_gfs_set():
    # Given a backup every day of 2025 at 03:15 UTC, two of them verified (1 March, 15 June)
    backups = daily_backups(date(2025, 1, 1), date(2025, 12, 31), verified={date(2025, 3, 1), date(2025, 6, 15)})
    policy = RetentionPolicy(keep_last=3, daily=7, weekly=4, monthly=6)

    # When the policy is applied at noon on 31 December 2025 (a Wednesday)
    keep, remove = select_to_keep(backups, policy, datetime(2025, 12, 31, 12, 0, tzinfo=timezone.utc))

    # Then, read off a calendar:
    expected = [
        date(2025, 6, 15),                         # newest verified backup, whatever its age
        date(2025, 7, 31), date(2025, 8, 31),      # monthly: last of Jul, Aug, Sep, Oct, Nov, Dec
        date(2025, 9, 30), date(2025, 10, 31),
        date(2025, 11, 30),
        date(2025, 12, 14),                        # weekly: Sunday of ISO weeks 2025-W50 and W51,
        date(2025, 12, 21),                        #   (W52 -> Sun 28 Dec, 2026-W01 -> Wed 31 Dec: also daily)
        date(2025, 12, 25), date(2025, 12, 26),    # daily: 25..31 December (keep_last 29..31 inside it)
        date(2025, 12, 27), date(2025, 12, 28),
        date(2025, 12, 29), date(2025, 12, 30), date(2025, 12, 31),
    ]
    assert days_of(keep) == expected
    assert len(remove) == 365 - 15
    assert keep[0].created.date() == date(2025, 12, 31)          # newest first
    assert not {b.backup_id for b in keep} & {b.backup_id for b in remove}


def test_periods_count_back_from_now_and_later_backups_are_kept():
    # Given daily backups through 2025, evaluated at noon on Monday 3 March 2025
    backups = daily_backups(date(2025, 1, 1), date(2025, 12, 31))
    policy = RetentionPolicy(keep_last=1, daily=3, weekly=2, monthly=2)
    now = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)

    keep, remove = select_to_keep(backups, policy, now)

    past_kept = [d for d in days_of(keep) if d <= date(2025, 3, 3)]
    # daily: 1, 2, 3 March; weekly: W10 starts Mon 3 March -> 3 March, W09 -> Sun 2 March;
    # monthly: March -> 3 March, February -> 28 February; keep_last -> 3 March
    assert past_kept == [date(2025, 2, 28), date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]
    # backups dated after `now` (a clock ahead of ours) are never removed
    assert len([d for d in days_of(keep) if d > date(2025, 3, 3)]) == (date(2025, 12, 31) - date(2025, 3, 3)).days
    assert days_of(remove) == [date(2025, 1, 1) + timedelta(days=i) for i in range(58)]   # 1 Jan .. 27 Feb


def test_several_backups_a_day_keep_the_newest_of_each_day():
    # Given three backups a day (02:00, 10:00, 18:00) for ten days
    backups = []
    for hour in (2, 10, 18):
        backups += daily_backups(date(2025, 5, 1), date(2025, 5, 10), at=(hour, 0))
    policy = RetentionPolicy(keep_last=2, daily=3)

    keep, _ = select_to_keep(backups, policy, datetime(2025, 5, 10, 20, 0, tzinfo=timezone.utc))

    assert [b.created for b in keep] == [
        datetime(2025, 5, 10, 18, 0, tzinfo=timezone.utc),   # keep_last and daily
        datetime(2025, 5, 10, 10, 0, tzinfo=timezone.utc),   # keep_last
        datetime(2025, 5, 9, 18, 0, tzinfo=timezone.utc),    # daily
        datetime(2025, 5, 8, 18, 0, tzinfo=timezone.utc),    # daily
    ]


def test_the_newest_verified_backup_survives_a_policy_that_would_drop_it():
    backups = daily_backups(date(2025, 1, 1), date(2025, 1, 31), verified={date(2025, 1, 2), date(2025, 1, 5)})
    keep, remove = select_to_keep(backups, RetentionPolicy(keep_last=1), datetime(2025, 2, 1, tzinfo=timezone.utc))
    assert days_of(keep) == [date(2025, 1, 5), date(2025, 1, 31)]
    assert date(2025, 1, 2) in days_of(remove)                   # only the newest verified one is protected


def test_verified_can_come_from_a_catalogue_instead_of_the_backup():
    backups = daily_backups(date(2025, 1, 1), date(2025, 1, 10))
    proven = {backups[3].backup_id}
    keep, _ = select_to_keep(backups, RetentionPolicy(keep_last=1), datetime(2025, 2, 1, tzinfo=timezone.utc),
                             verified=lambda b: b.backup_id in proven)
    assert days_of(keep) == [date(2025, 1, 4), date(2025, 1, 10)]


def test_days_are_utc_days_whatever_the_timezone_of_the_dates():
    paris = timezone(timedelta(hours=1))
    late = Backup("a", datetime(2025, 1, 10, 0, 30, tzinfo=paris))    # 9 January 23:30 UTC
    early = Backup("b", datetime(2025, 1, 9, 8, 0, tzinfo=timezone.utc))
    keep, remove = select_to_keep([late, early], RetentionPolicy(daily=2),
                                  datetime(2025, 1, 10, 12, 0, tzinfo=timezone.utc))
    assert keep == [late] and remove == [early]                  # both on 9 January UTC: newest wins


def test_a_policy_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError) as nothing_kept:
        RetentionPolicy()
    assert str(nothing_kept.value) == ("a retention policy that keeps nothing would delete every backup; set at "
                                       "least one of keep_last, daily, weekly, monthly")
    with pytest.raises(ValueError) as negative:
        RetentionPolicy(daily=-1)
    assert str(negative.value) == "retention counts must be whole numbers, 0 or more"
    assert RetentionPolicy.from_dict({"daily": "7", "monthly": 12}) == RetentionPolicy(daily=7, monthly=12)
    assert RetentionPolicy.from_dict({"keep_last": 1, "weekly": "4"}) == RetentionPolicy(keep_last=1, weekly=4)


@pytest.fixture
def host_far_from_utc(monkeypatch):
    """The host's local time 13 hours ahead of UTC: a UTC day, week or month must not become a local one."""
    import time
    monkeypatch.setenv("TZ", "Pacific/Auckland")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_periods_are_utc_periods_on_a_host_whose_local_time_is_not_utc(host_far_from_utc):
    # 20:00 UTC on the 1st is already the 2nd in Auckland; `now` is 01:00 UTC on the 2nd
    now = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    evening, morning = (Backup("evening", datetime(2026, 3, 1, 20, 0, tzinfo=timezone.utc)),
                        Backup("morning", datetime(2026, 3, 1, 6, 0, tzinfo=timezone.utc)))

    keep, remove = select_to_keep([morning, evening], RetentionPolicy(daily=2), now)

    assert [b.backup_id for b in keep] == ["evening"] and [b.backup_id for b in remove] == ["morning"]


def test_today_is_the_utc_day_of_now_on_a_host_whose_local_date_is_already_tomorrow(host_far_from_utc):
    # Break caught: `now` turned into the host's local time before its days are counted (20:00 UTC on the 1st
    # is 09:00 on the 2nd in Auckland, and the 1st's backup would not be today's)
    now = datetime(2026, 3, 1, 20, 0, tzinfo=timezone.utc)
    today = Backup("today", datetime(2026, 3, 1, 19, 0, tzinfo=timezone.utc))

    keep, remove = select_to_keep([today], RetentionPolicy(daily=1), now)

    assert keep == [today] and remove == []


def test_a_dated_item_without_an_id_ranks_below_one_with_an_id_at_the_same_moment():
    # Breaks caught: an item with only a `created` (all `Dated` asks for) failing the sort, or given a stand-in id
    # that ranks it above a real one made at the same moment
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

    @dataclass(frozen=True)
    class Undated:
        created: datetime

    named, bare = Backup("0001", now), Undated(now)

    keep, remove = select_to_keep([bare, named], RetentionPolicy(keep_last=1), now)

    assert keep == [named] and remove == [bare]


def test_backups_at_the_same_moment_are_ordered_by_id_and_one_made_now_is_not_in_the_future():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    a, b = Backup("20260302-a", now), Backup("20260302-b", now)

    keep, remove = select_to_keep([a, b], RetentionPolicy(daily=1), now)

    assert keep == [b] and remove == [a]  # the newest of the day: the greater id breaks the tie


def test_without_a_verified_attribute_nothing_counts_as_verified():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

    @dataclass(frozen=True)
    class Bare:
        backup_id: str
        created: datetime

    old = [Bare(f"old-{n}", now - timedelta(days=40 + n)) for n in range(3)]

    keep, remove = select_to_keep(old, RetentionPolicy(daily=1), now)

    assert keep == [] and len(remove) == 3


def test_monthly_counts_back_across_new_year():
    now = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
    backups = [Backup(f"b-{d:%Y%m}", d) for d in (datetime(2026, 1, 2, tzinfo=timezone.utc),
                                                  datetime(2025, 12, 2, tzinfo=timezone.utc),
                                                  datetime(2025, 11, 2, tzinfo=timezone.utc),
                                                  datetime(2024, 12, 2, tzinfo=timezone.utc))]

    keep, _ = select_to_keep(backups, RetentionPolicy(monthly=3), now)

    assert [b.backup_id for b in keep] == ["b-202601", "b-202512", "b-202511"]
