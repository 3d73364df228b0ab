"""The scheduler as functions and the CLI see it: `deps.scheduler`, usable from any process.

It writes plain rows in the shared database and never touches APScheduler:

- `schedule_expiry(env, at)` / `cancel_expiry(env)`: a TTL row the active scheduler
  turns into a date job within a second (and its tick catches any expiry it missed).
- `pause_jobs(selector, reason)` / `resume_jobs(selector)`: a pause with the time it
  began and ended; a fire is skipped when a pause covers its scheduled time or the
  moment it fires, so resuming never fires what was missed (ask `run-now` for that).

Why rows and not APScheduler's job store from every process: APScheduler 3 does not
support several schedulers on one store; the running one would not notice a job
written by another process until its next wake-up (hours away when the next job is
the nightly backup), and a worker replacing a date job while it fires would race with
its removal. Here only the lease holder writes the job store, and a worker needs
nothing but SQL.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from scheduler import selectors
from scheduler.jobs import EXPIRY_PREFIX, JobSpec, config_jobs
from scheduler.tables import expiries_table, jobs_table, pauses_table


@dataclass(frozen=True)
class Pause:
    id: int
    selector: dict
    reason: str
    paused_at: float
    lifted_at: float | None

    @property
    def active(self) -> bool:
        return self.lifted_at is None

    def covers(self, moment: float) -> bool:
        return self.paused_at <= moment and (self.lifted_at is None or self.lifted_at > moment)

    def describe(self) -> str:
        return f"{self.reason} ({selectors.describe(self.selector)})"


@dataclass(frozen=True)
class Expiry:
    env: str
    at: float
    fired_at: float | None


@dataclass(frozen=True)
class JobView:
    spec: JobSpec
    next_run: datetime | None  # from the job store; None before an active scheduler has added it
    pause: Pause | None


class Scheduler:
    def __init__(self, engine: Engine, schedules: list[dict] | None = None, clock=time.time):
        self._engine = engine
        self._schedules = list(schedules or [])
        self._clock = clock

    # -- environment TTLs --------------------------------------------------------------
    def schedule_expiry(self, env: str, at: datetime) -> None:
        """Emit env.expired for `env` at `at`; a second call moves it (safe to repeat)."""
        if at.tzinfo is None:
            raise ValueError(f"expiry of {env} at {at.isoformat()} has no time zone; pass an aware datetime (UTC)")
        values = {"at": at.timestamp(), "requested_at": self._clock(), "fired_at": None}
        moved = update(expiries_table).where(expiries_table.c.env == env).values(**values)
        with self._engine.begin() as conn:
            if conn.execute(moved).rowcount:
                return
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(expiries_table).values(env=env, **values))
        except IntegrityError:  # another process inserted it in between: ours is the newer word
            with self._engine.begin() as conn:
                conn.execute(moved)

    def cancel_expiry(self, env: str) -> bool:
        """Forget `env`'s pending TTL (deleted early); False when none was pending. Safe to repeat.

        An expiry that already fired stays, as the record of when it fired; a new
        environment of the same name overwrites it with its own.
        """
        with self._engine.begin() as conn:
            return bool(conn.execute(delete(expiries_table).where(
                and_(expiries_table.c.env == env, expiries_table.c.fired_at.is_(None)))).rowcount)

    def expiries(self, *, pending_only: bool = True) -> list[Expiry]:
        query = select(expiries_table).order_by(expiries_table.c.at)
        if pending_only:
            query = query.where(expiries_table.c.fired_at.is_(None))
        with self._engine.connect() as conn:
            return [Expiry(r.env, r.at, r.fired_at) for r in conn.execute(query)]

    def mark_expiry_fired(self, env: str, at: float) -> None:
        """The date job for (env, at) has emitted; a later reschedule (another `at`) stays pending."""
        with self._engine.begin() as conn:
            conn.execute(update(expiries_table).where(and_(expiries_table.c.env == env, expiries_table.c.at == at))
                         .values(fired_at=self._clock()))

    def prune(self, older_than: float) -> int:
        """Forget fired expiries and lifted pauses that ended before `older_than` (epoch seconds)."""
        with self._engine.begin() as conn:
            gone = conn.execute(delete(expiries_table).where(and_(expiries_table.c.fired_at.is_not(None),
                                                                  expiries_table.c.fired_at < older_than))).rowcount
            gone += conn.execute(delete(pauses_table).where(and_(pauses_table.c.lifted_at.is_not(None),
                                                                 pauses_table.c.lifted_at < older_than))).rowcount
        return gone

    # -- pauses ----------------------------------------------------------------------
    def pause_jobs(self, selector, reason: str) -> Pause:
        """Stop the selected jobs from firing until resumed; pausing alike twice is one pause."""
        canonical = selectors.normalize(selector)
        key = selectors.key_of(canonical)
        if (existing := self._active_pause(key)) is not None:
            return existing
        with self._engine.begin() as conn:
            conn.execute(insert(pauses_table).values(selector_key=key, selector=json.dumps(canonical, sort_keys=True),
                                                     reason=reason or "paused", paused_at=self._clock()))
        return self._active_pause(key)

    def resume_jobs(self, selector) -> list[Pause]:
        """Lift the pause(s) made with this selector; the jobs fire again at their next scheduled time."""
        key = selectors.key_of(selectors.normalize(selector))
        lifted = [p for p in self.pauses() if selectors.key_of(p.selector) == key]
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(update(pauses_table).where(and_(pauses_table.c.selector_key == key,
                                                         pauses_table.c.lifted_at.is_(None))).values(lifted_at=now))
        return [Pause(p.id, p.selector, p.reason, p.paused_at, now) for p in lifted]

    def pause(self, job_ids_or_tag, reason: str = "paused by hand") -> Pause:
        """`pause_jobs` for the command line's words: a job id, a list of ids, `tag:NAME`, `type:TYPE`."""
        return self.pause_jobs(job_ids_or_tag, reason)

    def resume(self, job_ids_or_tag) -> list[Pause]:
        return self.resume_jobs(job_ids_or_tag)

    def pauses(self, *, include_lifted: bool = False) -> list[Pause]:
        query = select(pauses_table).order_by(pauses_table.c.id)
        if not include_lifted:
            query = query.where(pauses_table.c.lifted_at.is_(None))
        with self._engine.connect() as conn:
            return [_pause(r) for r in conn.execute(query)]

    def pause_covering(self, job: JobSpec, scheduled: float, now: float | None = None) -> Pause | None:
        """The pause that holds this fire: one covering its scheduled time, or in force now."""
        now = self._clock() if now is None else now
        return covering(self.pauses_after(scheduled), job, scheduled, now)

    def pauses_after(self, moment: float) -> list[Pause]:
        """The pauses that can hold a fire scheduled at or after `moment`: in force, or lifted after it.

        One query for a whole sweep: the expiry safety net reads them once for a thousand
        environments (`covering` for each), not once per environment.
        """
        query = select(pauses_table).where(or_(pauses_table.c.lifted_at.is_(None),
                                               pauses_table.c.lifted_at > moment)).order_by(pauses_table.c.id)
        with self._engine.connect() as conn:
            return [_pause(r) for r in conn.execute(query)]

    def _active_pause(self, key: str) -> Pause | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(pauses_table).where(and_(pauses_table.c.selector_key == key,
                                                               pauses_table.c.lifted_at.is_(None)))
                               .order_by(pauses_table.c.id).limit(1)).first()
        return _pause(row) if row else None

    # -- the jobs --------------------------------------------------------------------
    def config_jobs(self) -> list[JobSpec]:
        return config_jobs(self._schedules)

    def job(self, job_id: str) -> JobSpec | None:
        """A configured job, or an environment's pending expiry (`expiry:ENV`)."""
        for spec in self.config_jobs():
            if spec.id == job_id:
                return spec
        if job_id.startswith(EXPIRY_PREFIX):
            env = job_id[len(EXPIRY_PREFIX):]
            for expiry in self.expiries(pending_only=False):
                if expiry.env == env:
                    return JobSpec.expiry(env, expiry.at)
        return None

    def jobs(self) -> list[JobView]:
        """Every job the active scheduler runs (or will once one is active), with next run and pause."""
        specs = self.config_jobs() + [JobSpec.expiry(e.env, e.at) for e in self.expiries()]
        next_runs = self._next_runs()
        now = self._clock()
        pauses = self.pauses_after(now)  # one query, not one per job (a thousand environments' TTLs)
        return [JobView(spec, next_runs.get(spec.id), covering(pauses, spec, now, now)) for spec in specs]

    def _next_runs(self) -> dict[str, datetime | None]:
        """Next run times straight from APScheduler's table (no unpickling, no scheduler needed)."""
        table = jobs_table
        with self._engine.connect() as conn:
            return {r.id: datetime.fromtimestamp(r.next_run_time, timezone.utc) if r.next_run_time else None
                    for r in conn.execute(select(table.c.id, table.c.next_run_time))}


def covering(pauses: list[Pause], job: JobSpec, scheduled: float, now: float) -> Pause | None:
    """The first of `pauses` that holds `job`'s fire scheduled at `scheduled`: it covers that time, or now."""
    for pause in pauses:
        if selectors.matches(pause.selector, job) and (pause.covers(scheduled) or pause.covers(now)):
            return pause
    return None


def _pause(row) -> Pause:
    return Pause(row.id, json.loads(row.selector), row.reason, row.paused_at, row.lifted_at)
