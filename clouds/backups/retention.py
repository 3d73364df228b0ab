"""Which backups to keep: keep the last N, and the newest of each of the last D days, W weeks, M months.

A pure function of the backups, the policy and the time, so it can be tested
over a simulated year and explained to whoever asks why a backup is gone.

Periods are calendar periods in UTC, counted back from `now`, the current one
included: "daily 7" keeps the newest backup of today and of each of the six days
before; "weekly 4" the newest of this ISO week (Monday to Sunday) and the three
before; "monthly 6" the newest of this calendar month and the five before. A
period without a backup keeps nothing and is not replaced by an older one.
On top of these:
  * the newest *verified* backup is always kept, whatever its age, so there is
    always one proven restorable;
  * a backup dated after `now` (a clock ahead of ours) is kept: what we cannot
    place, we do not delete.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence, TypeVar


class Dated(Protocol):
    created: datetime                 # timezone-aware


T = TypeVar("T", bound=Dated)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def __post_init__(self):
        counts = (self.keep_last, self.daily, self.weekly, self.monthly)
        if any(not isinstance(n, int) or n < 0 for n in counts):
            raise ValueError("retention counts must be whole numbers, 0 or more")
        if not any(counts):
            raise ValueError("a retention policy that keeps nothing would delete every backup; "
                             "set at least one of keep_last, daily, weekly, monthly")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetentionPolicy":
        return cls(**{k: int(data[k]) for k in ("keep_last", "daily", "weekly", "monthly") if k in data})


def select_to_keep(backups: Iterable[T], policy: RetentionPolicy, now: datetime, *,
                   verified: Callable[[T], bool] | None = None) -> tuple[list[T], list[T]]:
    """Split `backups` into (keep, remove), each newest first.

    `verified(backup)` says whether a backup was proven to restore; by default the
    backup's own `verified` attribute (False when it has none).
    """
    is_verified = verified or (lambda b: bool(getattr(b, "verified", False)))
    ordered = sorted(backups, key=_newest_first_key, reverse=True)
    now = now.astimezone(timezone.utc)
    kept_ids: set[int] = set()

    def keep(items: Sequence[T]) -> None:
        kept_ids.update(id(b) for b in items)

    keep([b for b in ordered if b.created.astimezone(timezone.utc) > now])
    past = [b for b in ordered if b.created.astimezone(timezone.utc) <= now]
    keep(past[:policy.keep_last])
    keep(_newest_per_period(past, _last_days(now, policy.daily), lambda d: d))
    keep(_newest_per_period(past, _last_weeks(now, policy.weekly), lambda d: d.isocalendar()[:2]))
    keep(_newest_per_period(past, _last_months(now, policy.monthly), lambda d: (d.year, d.month)))
    keep([b for b in ordered if is_verified(b)][:1])
    return ([b for b in ordered if id(b) in kept_ids], [b for b in ordered if id(b) not in kept_ids])


def _newest_first_key(backup) -> tuple:
    return backup.created.astimezone(timezone.utc), str(getattr(backup, "backup_id", ""))


def _newest_per_period(newest_first: Sequence[T], periods: set, period_of: Callable[[date], Hashable]) -> list[T]:
    chosen: dict[Hashable, T] = {}
    for backup in newest_first:
        period = period_of(backup.created.astimezone(timezone.utc).date())
        if period in periods and period not in chosen:
            chosen[period] = backup
    return list(chosen.values())


def _last_days(now: datetime, count: int) -> set:
    today = now.date()
    return {today - timedelta(days=i) for i in range(count)}


def _last_weeks(now: datetime, count: int) -> set:
    today = now.date()
    return {(today - timedelta(weeks=i)).isocalendar()[:2] for i in range(count)}


def _last_months(now: datetime, count: int) -> set:
    year, month = now.year, now.month
    months = set()
    for _ in range(count):
        months.add((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months
