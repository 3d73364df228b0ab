"""The audit trail: every event handled, as `doppel events` shows it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from schemas.envelope import Event, utcnow

metadata = MetaData()

audit_table = Table(
    "audit_events", metadata,
    Column("source", String(255), primary_key=True),
    Column("id", String(255), primary_key=True),
    Column("type", String(64), nullable=False, index=True),
    Column("correlation_id", String(255), nullable=False, index=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("subject", String(255)),
    Column("data", Text, nullable=False),
    Column("recorded_at", Float, nullable=False, index=True),  # `doppel events` reads the newest first
)


@dataclass(frozen=True)
class AuditRecord:
    source: str
    id: str
    type: str
    correlation_id: str
    time: datetime
    data: dict


class AuditTrail:
    def __init__(self, engine: Engine):
        self._engine = engine

    def record(self, event: Event) -> bool:
        """Record an event; False when it was recorded before (same source and id)."""
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(audit_table).values(
                    source=event.source, id=event.id, type=event.type, correlation_id=event.correlationid,
                    time=event.time, subject=event.subject, data=json.dumps(event.data, default=str),
                    recorded_at=utcnow().timestamp()))
            return True
        except IntegrityError:
            return False

    def events(self, *, correlation_id: str | None = None, event_type: str | None = None,
               limit: int | None = None, since=None, newest: bool = False) -> list[AuditRecord]:
        """Events in the order they were recorded; with `newest`, `limit` keeps the newest ones (still oldest
        first); `since`, only those recorded at or after that moment."""
        order = (audit_table.c.recorded_at, audit_table.c.time)
        query = select(audit_table).order_by(*((c.desc() for c in order) if newest else order))
        if correlation_id:
            query = query.where(audit_table.c.correlation_id == correlation_id)
        if event_type:
            query = query.where(audit_table.c.type == event_type)
        if since is not None:
            query = query.where(audit_table.c.recorded_at >= since)
        if limit:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            records = [AuditRecord(r.source, r.id, r.type, r.correlation_id, r.time, json.loads(r.data))
                       for r in conn.execute(query)]
        return records[::-1] if newest else records

    def correlation_ids_starting(self, prefix: str, limit: int = 10) -> list[str]:
        """The chains whose correlation id starts with `prefix` (for ids typed short)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (select(audit_table.c.correlation_id).distinct()
                 .where(audit_table.c.correlation_id.like(f"{escaped}%", escape="\\"))
                 .order_by(audit_table.c.correlation_id).limit(limit))
        with self._engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def count(self) -> int:
        from sqlalchemy import func
        with self._engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(audit_table)).scalar_one()
