"""Disaster-recovery state in the shared database: one row per production, and the drill history.

`dr_state` is the lock that keeps one failover (or failback, or sync) at a time per
production, across workers and hosts: every move between states is a compare-and-swap
on the row (`UPDATE ... WHERE state = <expected>`), so of two workers racing only one
moves it. The row also keeps what a failback needs later: the DNS records as they were
before the failover, and which backup the DR copy holds.

    normal ──► failing_over ──► failed_over ──► failing_back ──► normal
       ▲  └──► syncing ──┘(back to normal)
       └── pending (decision: confirm, an alarm waits for failover.confirmed)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

NORMAL, PENDING, SYNCING, FAILING_OVER, FAILED_OVER, FAILING_BACK = (
    "normal", "pending", "syncing", "failing_over", "failed_over", "failing_back")

metadata = MetaData()

dr_state_table = Table(
    "dr_state", metadata,
    Column("production", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("holder", String(255)),            # the event whose handling holds the state (a replay resumes)
    Column("alarm_id", String(255)),
    Column("alarm_at", DateTime(timezone=True)),      # the alarm a failover answers (RPO and RTO start here)
    Column("last_trigger_at", DateTime(timezone=True)),  # the debounce window starts here
    Column("backup_id", String(64)),          # the backup the DR copy serves (failed over)
    Column("dr_backup_id", String(64)),       # the backup the DR copy holds (sync or failover restored it)
    Column("previous_dns", Text),             # JSON: the records before the failover's switch
    Column("dns_switched", Boolean, default=False),
    Column("detail", Text),
)

drills_table = Table(
    "dr_drills", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("production", String(64), nullable=False, index=True),
    Column("backup_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("rpo_seconds", Float),
    Column("rto_seconds", Float),
    Column("detail", Text),
)


@dataclass(frozen=True)
class DrRow:
    production: str
    state: str
    since: datetime
    holder: str | None = None
    alarm_id: str | None = None
    alarm_at: datetime | None = None
    last_trigger_at: datetime | None = None
    backup_id: str | None = None
    dr_backup_id: str | None = None
    previous_dns: list = field(default_factory=list)
    dns_switched: bool = False
    detail: str | None = None


@dataclass(frozen=True)
class Drill:
    production: str
    backup_id: str
    at: datetime
    verified: bool
    rpo_seconds: float | None
    rto_seconds: float | None
    detail: str


def _utc(moment):
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _row(row) -> DrRow:
    return DrRow(row.production, row.state, _utc(row.since), row.holder, row.alarm_id, _utc(row.alarm_at),
                 _utc(row.last_trigger_at), row.backup_id, row.dr_backup_id,
                 json.loads(row.previous_dns) if row.previous_dns else [], bool(row.dns_switched), row.detail)


class DrStates:
    def __init__(self, engine: Engine, clock=lambda: datetime.now(timezone.utc)):
        self._engine = engine
        self._clock = clock

    def get(self, production: str) -> DrRow:
        """The production's row; a production never failed over reads as `normal`."""
        with self._engine.connect() as conn:
            row = conn.execute(select(dr_state_table).where(dr_state_table.c.production == production)).first()
        return _row(row) if row else DrRow(production, NORMAL, self._clock())

    def all(self) -> list[DrRow]:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(dr_state_table).order_by(dr_state_table.c.production))]

    def move(self, production: str, expected: tuple[str, ...], state: str, *, unheld: bool = False,
             **values) -> bool:
        """Compare-and-swap: move to `state` only from one of `expected` (and, with `unheld`, only while nobody
        holds the row); False when another got there first."""
        if "previous_dns" in values:
            values["previous_dns"] = json.dumps(values["previous_dns"])
        self._ensure(production)
        query = (update(dr_state_table).where(dr_state_table.c.production == production)
                 .where(dr_state_table.c.state.in_(expected)))
        if unheld:
            query = query.where(dr_state_table.c.holder.is_(None))
        with self._engine.begin() as conn:
            moved = conn.execute(query.values(state=state, since=self._clock(), **values))
        return moved.rowcount == 1

    def note(self, production: str, **values) -> None:
        """Record progress on the row without changing its state (e.g. which backup the DR copy holds)."""
        if "previous_dns" in values:
            values["previous_dns"] = json.dumps(values["previous_dns"])
        self._ensure(production)
        with self._engine.begin() as conn:
            conn.execute(update(dr_state_table).where(dr_state_table.c.production == production).values(**values))

    def _ensure(self, production: str) -> None:
        try:
            with self._engine.begin() as conn:
                if conn.execute(select(dr_state_table.c.production)
                                .where(dr_state_table.c.production == production)).first() is None:
                    conn.execute(insert(dr_state_table).values(production=production, state=NORMAL,
                                                               since=self._clock()))
        except IntegrityError:
            pass  # another worker made it at the same moment

    # -- drills --------------------------------------------------------------------
    def record_drill(self, drill: Drill) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(drills_table).values(
                production=drill.production, backup_id=drill.backup_id, at=drill.at, verified=drill.verified,
                rpo_seconds=drill.rpo_seconds, rto_seconds=drill.rto_seconds, detail=drill.detail))

    def drills(self, production: str | None = None) -> list[Drill]:
        query = select(drills_table).order_by(drills_table.c.at, drills_table.c.id)
        if production:
            query = query.where(drills_table.c.production == production)
        with self._engine.connect() as conn:
            return [Drill(r.production, r.backup_id, _utc(r.at), r.verified, r.rpo_seconds, r.rto_seconds,
                          r.detail or "") for r in conn.execute(query)]
