"""One active scheduler across replicas: a lease row in Doppel's database.

The holder renews it every `renew_every` seconds; a standby reads it every
`poll_every` seconds and takes it over once it has expired (or was released on a
clean stop) with a compare-and-swap on the row's generation, so two standbys never
both win. With the defaults (renew 2 s, expire after 6 s, poll 1 s) a standby takes
over at most ~7 s after the holder is `kill -9`ed, and within a second of a clean stop.

The holder stops firing `safety` seconds before its lease could be taken over
(`valid()`, on the monotonic clock), so a holder that stalls (a paused VM, a long
GC, a lost database) fences itself before a standby starts. Expiry is compared with
each replica's wall clock: keep the hosts' clocks in sync (NTP) well within `safety`.

Works the same on SQLite and PostgreSQL: single-row UPDATEs with the expected
generation in the WHERE clause, no locks held between statements.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from scheduler.tables import lease_table

log = logging.getLogger(__name__)
LEASE_NAME = "scheduler"


@dataclass(frozen=True)
class LeaseTiming:
    ttl: float = 6.0
    renew_every: float = 2.0
    poll_every: float = 1.0
    safety: float = 1.0
    # A lease that lapsed at most this long before we took it was handed over, not
    # abandoned: the fires that fell due in between are owed, not missed (see firing.plan).
    handover_window: float = 3.0


@dataclass(frozen=True)
class LeaseRow:
    holder: str
    generation: int
    acquired_at: float
    renewed_at: float
    expires_at: float
    released: bool

    def lapsed_at(self) -> float:
        """When the holder stopped holding: its release, or its expiry."""
        return min(self.renewed_at, self.expires_at) if self.released else self.expires_at


@dataclass(frozen=True)
class Acquisition:
    """What this process found when it took the lease: the basis for owing or coalescing missed fires."""
    at: float
    previous: LeaseRow | None

    def owed_since(self, timing: LeaseTiming) -> float:
        """Fires scheduled at or after this moment are each owed; earlier missed ones are coalesced.

        Handed over (the previous holder lapsed just before we took it): everything
        since a little before its last renewal is owed, since it may have died right
        after. Abandoned (no holder for a while, or none ever): only what falls due
        from now on is owed; the backlog is downtime.
        """
        previous = self.previous
        if previous is None or self.at - previous.lapsed_at() > timing.handover_window:
            return self.at
        return previous.renewed_at - timing.renew_every


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(self, engine: Engine, holder: str | None = None, timing: LeaseTiming = LeaseTiming(),
                 name: str = LEASE_NAME, clock=time.time, monotonic=time.monotonic):
        self._engine, self.name, self.timing = engine, name, timing
        self.holder = holder or default_holder()
        self._clock, self._monotonic = clock, monotonic
        self._generation: int | None = None
        self._valid_until = 0.0  # monotonic
        self._last_renewal = 0.0  # monotonic
        self.acquisition: Acquisition | None = None

    # -- one step, called every poll_every seconds by `keep` -------------------------------
    def step(self) -> bool:
        """Renew the lease if held and due, else try to take it; True while this process holds it."""
        try:
            if self._generation is not None:
                if self._monotonic() - self._last_renewal < self.timing.renew_every and self.valid():
                    return True
                if self._renew():
                    return True
                log.warning("scheduler lease lost: another scheduler holds it now")
                self._generation = None
            return self._take()
        except SQLAlchemyError as exc:
            # The database is away: keep firing only while the lease we have is still valid.
            log.warning("scheduler lease: database error (%s); valid for %.1f s more", type(exc).__name__,
                        max(0.0, self._valid_until - self._monotonic()))
            return self.valid()

    def valid(self) -> bool:
        """True while this process may fire: held, and not within `safety` of a possible takeover."""
        return self._generation is not None and self._monotonic() < self._valid_until

    def _renew(self) -> bool:
        started, now = self._monotonic(), self._clock()
        with self._engine.begin() as conn:
            renewed = conn.execute(update(lease_table).where(and_(
                lease_table.c.name == self.name, lease_table.c.holder == self.holder,
                lease_table.c.generation == self._generation, lease_table.c.released.is_(False)))
                .values(renewed_at=now, expires_at=now + self.timing.ttl)).rowcount
        if renewed:
            self._held_from(started)
        return bool(renewed)

    def _take(self) -> bool:
        started, now = self._monotonic(), self._clock()
        row = self.read()
        if row is not None and not row.released and row.expires_at >= now:
            return False  # held by someone (maybe our own lapsed generation: it will expire first)
        values = {"holder": self.holder, "acquired_at": now, "renewed_at": now, "expires_at": now + self.timing.ttl,
                  "released": False}
        with self._engine.begin() as conn:
            if row is None:
                try:
                    conn.execute(insert(lease_table).values(name=self.name, generation=1, **values))
                except IntegrityError:
                    return False
                generation = 1
            else:
                generation = row.generation + 1
                swapped = conn.execute(update(lease_table).where(and_(
                    lease_table.c.name == self.name, lease_table.c.generation == row.generation))
                    .values(generation=generation, **values)).rowcount
                if not swapped:
                    return False  # another standby won the race
        self._generation = generation
        self._held_from(started)
        self.acquisition = Acquisition(now, row)
        log.info("scheduler lease taken by %s (generation %d, previous %s)", self.holder, generation,
                 row.holder if row else "none")
        return True

    def _held_from(self, started: float) -> None:
        self._last_renewal = started
        self._valid_until = started + self.timing.ttl - self.timing.safety

    def release(self) -> None:
        """Let go on a clean stop, so a standby takes over at its next poll instead of after expiry."""
        if self._generation is None:
            return
        generation, self._generation = self._generation, None
        now = self._clock()
        try:
            with self._engine.begin() as conn:
                conn.execute(update(lease_table).where(and_(
                    lease_table.c.name == self.name, lease_table.c.holder == self.holder,
                    lease_table.c.generation == generation)).values(released=True, renewed_at=now, expires_at=now))
        except SQLAlchemyError:
            log.exception("could not release the scheduler lease; a standby takes over when it expires")

    def read(self) -> LeaseRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(lease_table).where(lease_table.c.name == self.name)).first()
        return _row(row) if row else None

    # -- the loop --------------------------------------------------------------------------
    def keep(self, stop: threading.Event, on_change=lambda held: None) -> None:
        """Step every poll_every seconds until `stop`; call `on_change(held)` when that flips."""
        held = False
        while not stop.is_set():
            now_held = self.step()
            if now_held != held:
                held = now_held
                on_change(held)
            stop.wait(self.timing.poll_every)


def read_lease(engine: Engine, name: str = LEASE_NAME) -> LeaseRow | None:
    """The lease as the CLI shows it, from any process."""
    with engine.connect() as conn:
        row = conn.execute(select(lease_table).where(lease_table.c.name == name)).first()
    return _row(row) if row else None


def _row(row) -> LeaseRow:
    return LeaseRow(row.holder, row.generation, row.acquired_at, row.renewed_at, row.expires_at, bool(row.released))
