"""The idempotency ledger: (function, key) claimed before a handler runs, completed after.

A key already done is acknowledged without running the handler again. A key
claimed by a worker that died is taken over once its lease has run out; a live
worker renews its lease while its handler runs.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import (Column, Float, MetaData, String, Table, Text, and_, insert, or_, select,
                        update)
from sqlalchemy.engine import Engine

from doppel.db import create_tables
from sqlalchemy.exc import IntegrityError

metadata = MetaData()

ledger_table = Table(
    "idempotency_ledger", metadata,
    Column("function", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("owner", String(64), nullable=False),
    Column("lease_until", Float, nullable=False),
    Column("event_id", String(255)),
    Column("event_type", String(64)),
    Column("correlation_id", String(255)),
    Column("result", Text),  # JSON: emitted event ids, or the error
    Column("updated_at", Float, nullable=False),
)


class Claim(Enum):
    RUN = "run"    # yours: run the handler
    DONE = "done"  # completed before: acknowledge without running
    BUSY = "busy"  # another live worker holds it: try again after its lease


@dataclass(frozen=True)
class LedgerEntry:
    function: str
    key: str
    status: str
    event_id: str | None
    event_type: str | None
    correlation_id: str | None
    result: dict
    updated_at: float


class Ledger:
    def __init__(self, engine: Engine, clock=time.time):
        self._engine = engine
        self._clock = clock
        create_tables(metadata, engine)

    def claim(self, function: str, key: str, owner: str, lease_s: float, *, event=None) -> Claim:
        now = self._clock()
        row = {"function": function, "key": key, "status": "running", "owner": owner,
               "lease_until": now + lease_s, "updated_at": now}
        if event is not None:
            row.update(event_id=event.id, event_type=event.type, correlation_id=event.correlationid)
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(ledger_table).values(**row))
            return Claim.RUN
        except IntegrityError:
            pass
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(ledger_table)
                .where(and_(ledger_table.c.function == function, ledger_table.c.key == key,
                            ledger_table.c.status != "done",
                            or_(ledger_table.c.status == "failed", ledger_table.c.lease_until < now)))
                .values(**{k: v for k, v in row.items() if k not in ("function", "key")})
            ).rowcount
            if taken:
                return Claim.RUN
            status = conn.execute(
                select(ledger_table.c.status).where(
                    and_(ledger_table.c.function == function, ledger_table.c.key == key))
            ).scalar()
        return Claim.DONE if status == "done" else Claim.BUSY

    def renew(self, function: str, key: str, owner: str, lease_s: float) -> bool:
        """Extend the lease; False when the claim was lost (taken over after expiry)."""
        with self._engine.begin() as conn:
            return bool(conn.execute(
                update(ledger_table)
                .where(self._mine(function, key, owner))
                .values(lease_until=self._clock() + lease_s, updated_at=self._clock())
            ).rowcount)

    def complete(self, function: str, key: str, owner: str, result: dict) -> None:
        self._finish(function, key, owner, "done", result)

    def fail(self, function: str, key: str, owner: str, error: str) -> None:
        """Release the claim after a failure, so a retry (or a replay) may claim it again."""
        self._finish(function, key, owner, "failed", {"error": error})

    def entries(self, *, event_ids=None, correlation_id: str | None = None) -> list[LedgerEntry]:
        query = select(ledger_table).order_by(ledger_table.c.updated_at)
        if event_ids is not None:
            query = query.where(ledger_table.c.event_id.in_(list(event_ids)))
        if correlation_id is not None:
            query = query.where(ledger_table.c.correlation_id == correlation_id)
        with self._engine.connect() as conn:
            return [LedgerEntry(r.function, r.key, r.status, r.event_id, r.event_type, r.correlation_id,
                                json.loads(r.result or "{}"), r.updated_at)
                    for r in conn.execute(query)]

    def _finish(self, function, key, owner, status, result) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(ledger_table).where(self._mine(function, key, owner))
                .values(status=status, result=json.dumps(result), updated_at=self._clock()))

    @staticmethod
    def _mine(function, key, owner):
        return and_(ledger_table.c.function == function, ledger_table.c.key == key,
                    ledger_table.c.owner == owner, ledger_table.c.status == "running")
