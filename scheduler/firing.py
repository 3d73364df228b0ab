"""A fire: the events for a job's scheduled times, published with confirms before the store moves on.

The event id is derived from the job id and the scheduled time (an expiry's from the
environment's request and its expires_at), so a second fire of the same time, from a
replica that had not yet noticed it lost the lease or from a successor re-running a
time whose fire was not yet recorded, carries the same id and the functions' ledger
absorbs it.

The executor runs on APScheduler's own thread and returns only once the events are
confirmed by the broker (or kept in the outbox table): APScheduler records the next
run time after `submit_job` returns, so a `kill -9` at any moment leaves a scheduled
time either recorded as fired or still due, never lost.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.executors.base import BaseExecutor
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.broker import event_message
from scheduler.control import covering
from scheduler.jobs import EXPIRY, JobSpec
from scheduler.tables import outbox_table
from schemas.envelope import Event, derived_id, format_time

log = logging.getLogger(__name__)
SOURCE = "doppel/scheduler"


# -- ids and events ----------------------------------------------------------------------
def fire_id(job_id: str, scheduled: datetime) -> str:
    """The id of a config job's fire: the same for every replica and every retry of that time."""
    return derived_id("schedule", job_id, format_time(scheduled))


def expiry_id(request_id: str, expires_at: datetime) -> str:
    """The id of an environment's env.expired, whether the date job or the tick's safety net emits it."""
    return derived_id("expiry", request_id, format_time(expires_at))


def timed_data(job: JobSpec, scheduled: datetime, now: datetime) -> dict:
    late = max(0.0, (now - scheduled).total_seconds())
    return {**job.data, "job": job.id, "scheduled_for": format_time(scheduled), "late_seconds": round(late, 3)}


def schedule_event(job: JobSpec, scheduled: datetime, now: datetime, source: str = SOURCE) -> Event:
    return Event(type=job.type, source=source, data=timed_data(job, scheduled, now), id=fire_id(job.id, scheduled),
                 time=now)


def expiring_event(env, source: str = SOURCE) -> Event:
    """env.expiring for a registry Environment near its end; the same id for the same end."""
    return Event(type="env.expiring", source=source,
                 id=derived_id("expiring", env.request_id, format_time(env.expires_at)),
                 data={"env": env.name, "expires_at": format_time(env.expires_at), "owner": env.owner},
                 correlationid=env.correlation_id or "")


def expiry_event(env, now: datetime, source: str = SOURCE) -> Event:
    """env.expired for a registry Environment, in its own chain (its correlation id)."""
    job = JobSpec.expiry(env.name, env.expires_at.timestamp())
    return Event(type="env.expired", source=source, data=timed_data(job, env.expires_at, now),
                 id=expiry_id(env.request_id, env.expires_at), time=now, correlationid=env.correlation_id or "")


# -- which times to fire -----------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    fire: list  # scheduled times to emit, oldest first
    too_late: list  # past the job's misfire grace: dropped
    coalesced: list  # missed during downtime, folded into the first of them


def plan(run_times: list[datetime], now: datetime, grace: float | None, owed_since: datetime) -> Plan:
    """Every owed time fires; the downtime backlog fires once, as its earliest time within grace.

    Owed: scheduled at or after `owed_since`, i.e. while some scheduler held the lease
    (this one, or the one it just took over from). Downtime: due while no scheduler
    held it; those collapse into one event, marked late by how long it waited.
    """
    times = sorted(run_times)
    in_grace = [t for t in times if grace is None or (now - t) <= timedelta(seconds=grace)]
    too_late = [t for t in times if t not in in_grace]
    backlog = [t for t in in_grace if t < owed_since]
    owed = [t for t in in_grace if t >= owed_since]
    return Plan(fire=backlog[:1] + owed, too_late=too_late, coalesced=backlog[1:])


# -- publishing, with an outbox for what the broker does not confirm ---------------------
class Emitter:
    """Publishes with confirms; what fails is kept in the outbox table and retried by `flush`."""

    def __init__(self, broker, engine: Engine, clock=time.time, metrics=None):
        """`metrics`: a core.metrics.Metrics that counts what is published, by type."""
        self._broker, self._engine, self._clock = broker, engine, clock
        self._metrics = metrics
        self._lock = threading.Lock()  # one publisher at a time: APScheduler's thread and the tick share it

    def emit(self, events: list[Event]) -> bool:
        """True when the broker confirmed them all; False when they wait in the outbox."""
        if not events:
            return True
        try:
            with self._lock:
                self._broker.publish([event_message(e) for e in events])
            self._count(events)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure: keep them, never lose a fire
            log.warning("scheduler: broker did not confirm %d event(s) (%s: %s); kept in the outbox",
                        len(events), type(exc).__name__, exc)
            self._keep(events, f"{type(exc).__name__}: {exc}")
            return False

    def _keep(self, events: list[Event], error: str) -> None:
        for event in events:
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(outbox_table).values(
                        event_id=event.id, type=event.type, body=event.to_json().decode(),
                        correlation_id=event.correlationid, created_at=self._clock(), attempts=1, last_error=error))
            except IntegrityError:
                pass  # already waiting: same id, same event

    def flush(self) -> int:
        """Publish what waits in the outbox; returns how many went out."""
        with self._engine.connect() as conn:
            rows = list(conn.execute(select(outbox_table).order_by(outbox_table.c.created_at).limit(500)))
        if not rows:
            return 0
        events = [Event.from_json(r.body) for r in rows]
        try:
            with self._lock:
                self._broker.publish([event_message(e) for e in events])
        except Exception as exc:  # noqa: BLE001
            with self._engine.begin() as conn:
                conn.execute(update(outbox_table).where(outbox_table.c.event_id.in_([e.id for e in events]))
                             .values(attempts=outbox_table.c.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"))
            return 0
        self._count(events)
        with self._engine.begin() as conn:
            conn.execute(delete(outbox_table).where(outbox_table.c.event_id.in_([e.id for e in events])))
        log.info("scheduler: published %d event(s) from the outbox", len(events))
        return len(events)

    def _count(self, events: list[Event]) -> None:
        if self._metrics is not None:
            for event in events:
                self._metrics.fired(event.type)


# -- the fire itself -----------------------------------------------------------------------
@dataclass
class Firer:
    """Turns a job's due times into published events: fenced by the lease, held by pauses."""
    control: object  # scheduler.control.Scheduler
    registry: object  # core.registry.Registry
    emitter: Emitter
    may_fire: Callable[[], bool]  # the lease's valid()
    source: str = SOURCE
    owed_since: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    fired: int = 0
    _expiries_sent: dict = field(default_factory=dict)  # env.expired id -> monotonic time it was published
    _warned: set = field(default_factory=set)  # env.expiring ids this replica published
    # Held from "was it sent?" to "sent": a date job (APScheduler's thread) and the tick's sweep never both
    # send one environment's env.expired.
    _expiry_lock: threading.Lock = field(default_factory=threading.Lock)

    def fire(self, job: JobSpec, run_times: list[datetime]) -> None:
        if not self.may_fire():
            log.warning("scheduler: not firing %s: this replica no longer holds the lease", job.id)
            return
        now = self.clock()
        chosen = plan(run_times, now, job.misfire_grace, self.owed_since)
        self._log_plan(job, chosen, now)
        events = []
        for scheduled in chosen.fire:
            pause = self.control.pause_covering(job, scheduled.timestamp(), now.timestamp())
            if pause is not None:
                log.info("scheduler: %s at %s skipped: paused (%s)", job.id, format_time(scheduled), pause.describe())
                continue
            event = self._event(job, scheduled, now)
            if event is not None:
                events.append(event)
        if job.kind != EXPIRY:
            self.emitter.emit(events)
            self.fired += len(events)
            return
        with self._expiry_lock:
            events = [e for e in events if not self._sent_lately(e.id)]
            self.emitter.emit(events)
            self._expiries_sent.update({e.id: time.monotonic() for e in events})
        self.fired += len(events)
        self.control.mark_expiry_fired(job.env, job.at)

    def _event(self, job: JobSpec, scheduled: datetime, now: datetime) -> Event | None:
        if job.kind != EXPIRY:
            return schedule_event(job, scheduled, now, self.source)
        env = self.registry.living(job.env)
        if env is None or env.expires_at is None:
            log.info("scheduler: %s: environment %s is no longer living; nothing to expire", job.id, job.env)
            return None
        if env.expires_at > now + timedelta(seconds=1):
            log.info("scheduler: %s: %s now expires at %s; the tick will expire it then", job.id, job.env,
                     format_time(env.expires_at))
            return None
        return expiry_event(env, now, self.source)

    @staticmethod
    def _log_plan(job: JobSpec, chosen: Plan, now: datetime) -> None:
        if chosen.too_late:
            log.warning("scheduler: %s missed %d fire(s) beyond its misfire grace of %ss (latest %s); not emitted",
                        job.id, len(chosen.too_late), job.misfire_grace, format_time(chosen.too_late[-1]))
        if chosen.coalesced:
            first = chosen.fire[0]
            log.warning("scheduler: %s missed %d fire(s) while no scheduler ran; emitting one, for %s, %.1f s late",
                        job.id, len(chosen.coalesced) + 1, format_time(first), (now - first).total_seconds())

    def sweep_expired(self, every: float = 60.0) -> int:
        """The safety net: env.expired for every ready environment past its TTL.

        Same id as the date job's, so the two de-duplicate; re-sent at most every
        `every` seconds while the environment stays ready (its backup not yet begun).
        """
        if not self.may_fire():
            return 0
        now = self.clock()
        expired = self.registry.expired(now)
        if not expired:
            return 0
        pauses = self.control.pauses_after(min(env.expires_at for env in expired).timestamp())  # one query
        candidates = []
        for env in expired:
            job = JobSpec.expiry(env.name, env.expires_at.timestamp())
            if covering(pauses, job, env.expires_at.timestamp(), now.timestamp()) is None:
                candidates.append(expiry_event(env, now, self.source))
        with self._expiry_lock:
            events = [e for e in candidates if not self._sent_lately(e.id, every)]
            if events and self.emitter.emit(events):
                self._expiries_sent.update({e.id: time.monotonic() for e in events})
            self._forget_sent_before(time.monotonic() - 3600)
        return len(events)

    def sweep_expiring(self, warn_before: float) -> int:
        """env.expiring for every ready environment whose end is within `warn_before`: once per end.

        Its id is derived from the environment's request and its end, so a warning sent again (by another
        replica, or after a restart) is the same event and de-duplicated downstream; this replica sends each
        id once. An environment extended past the window and nearing its new end is warned again.
        """
        if warn_before <= 0 or not self.may_fire():
            return 0
        now = self.clock()
        events = [expiring_event(env, self.source) for env in self.registry.in_state("ready")
                  if env.expires_at is not None and now < env.expires_at <= now + timedelta(seconds=warn_before)]
        events = [e for e in events if e.id not in self._warned]
        if events and self.emitter.emit(events):
            self._warned.update(e.id for e in events)
        return len(events)

    def _sent_lately(self, event_id: str, within: float = 60.0) -> bool:
        """This replica published that env.expired less than `within` seconds ago (by its date job or a sweep).

        A thousand environments expiring in one second: the tick's sweep sends them all at once, and their date
        jobs, firing one by one after it, find theirs sent and send nothing again.
        """
        last = self._expiries_sent.get(event_id)
        return last is not None and time.monotonic() - last < within

    def _forget_sent_before(self, moment: float) -> None:
        for event_id in [i for i, sent in self._expiries_sent.items() if sent < moment]:
            del self._expiries_sent[event_id]


# -- APScheduler glue ------------------------------------------------------------------------
def fire_from_store(**kwargs):
    """The callable APScheduler records for every Doppel job. Never run: EmitExecutor reads the spec instead."""
    raise RuntimeError("Doppel's timed jobs are fired by scheduler.firing.EmitExecutor; run `doppel scheduler`")


FUNC_REF = "scheduler.firing:fire_from_store"


class EmitExecutor(BaseExecutor):
    """Fires on the scheduler thread, synchronously: see the module docstring for why."""

    def __init__(self, firer: Firer, store, retry_after: float = 1.0):
        super().__init__()
        self._firer, self._store, self._retry_after = firer, store, retry_after

    def submit_job(self, job, run_times):
        try:
            self._firer.fire(JobSpec.from_dict(job.kwargs["spec"]), list(run_times))
        except Exception:  # noqa: BLE001 - APScheduler would log it and move past these times
            log.exception("scheduler: fire of %s failed; it stays due and is tried again", job.id)
            self._store.keep_due(job.id)  # the store skips the next-run-time update: nothing is lost
            time.sleep(self._retry_after)  # and a persistent failure does not spin the scheduler thread

    def _do_submit_job(self, job, run_times):  # pragma: no cover - submit_job is overridden
        raise NotImplementedError
