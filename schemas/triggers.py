"""APScheduler triggers from a schedule's words: `cron` + `timezone`, `every`, or one date.

The config schema validates with these same functions, so whatever passes start-up
is exactly what the scheduler builds; errors say what is wrong and how to write it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

# Interval fires are aligned on a fixed anchor, so every replica and every restart
# computes the same scheduled times, hence the same event ids, whenever it started.
INTERVAL_ANCHOR = datetime(2024, 1, 1, tzinfo=timezone.utc)
MIN_EVERY_SECONDS = 1.0


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name; ValueError naming the fix otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris, "
                         f"America/New_York or UTC") from None


def cron_trigger(expression: str, timezone_name: str = "UTC") -> CronTrigger:
    """A five-field crontab expression (minute hour day-of-month month day-of-week) in a time zone."""
    tz = zone(timezone_name)
    try:
        return CronTrigger.from_crontab(expression, timezone=tz)
    except ValueError as exc:
        raise ValueError(f"cron {expression!r} is not a valid cron expression ({exc}); write five fields, "
                         f"minute hour day-of-month month day-of-week, e.g. '0 2 * * *'") from None


def interval_trigger(seconds: float) -> IntervalTrigger:
    """Every `seconds`, aligned on INTERVAL_ANCHOR."""
    if seconds < MIN_EVERY_SECONDS:
        raise ValueError(f"every {seconds:g}s is too short; the shortest interval is {MIN_EVERY_SECONDS:g}s")
    return IntervalTrigger(seconds=seconds, start_date=INTERVAL_ANCHOR, timezone=timezone.utc)


def date_trigger(at: datetime) -> DateTrigger:
    """Once, at `at` (a time-zone-aware moment)."""
    if at.tzinfo is None:
        raise ValueError(f"{at.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return DateTrigger(run_date=at, timezone=timezone.utc)
