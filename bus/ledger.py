"""The idempotency ledger: (function, key) claimed before a handler runs, completed after.

A key already done is acknowledged without running the handler again. A key
claimed by a worker that died is taken over once its lease has run out; a live
worker renews its lease while its handler runs.

Nothing depends on a message surviving. A claim keeps the event it was made for,
so a worker's sweep can publish it again when its claim ran out and no delivery
came to take it over (`take_redrives`): the message was lost with the worker, or
on the way back through a delay queue. A key whose claims ran out MAX_TAKEOVERS
+ 1 times in a row (a handler that kills its worker: out of memory, a crash in a
library) is abandoned: no delivery runs it again (`Claim.ABANDONED`: the worker
parks it), so such an event cannot take down worker after worker for ever, until
`doppel dlq replay` reopens it (`reopen`).

Group commit: see bus.group_commit.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from bus.group_commit import _Call, _GroupCommit
from bus.ledger_table import (
    _FINISH,
    _HOLDERS,
    _NOTHING,
    _NOTHING_EMITTED,
    _DriverSQL,
    _insert_ignoring_existing,
    ledger_table,
)

log = logging.getLogger(__name__)
# A key whose claims ran out this many times in a row (taken over each time) is abandoned at the next.
MAX_TAKEOVERS = 3
ABANDONED_REASON = ("abandoned: the workers that claimed it stopped before finishing, {times} times in a row "
                    "(killed, out of memory, or a crash in the handler?); see the workers' logs, fix the cause, "
                    "then `doppel dlq replay` it")


class Claim(Enum):
    RUN = "run"    # yours: run the handler
    DONE = "done"  # completed before: acknowledge without running
    BUSY = "busy"  # another live worker holds it: try again after its lease
    ABANDONED = "abandoned"  # its claims ran out too often: park it; only a replay (`reopen`) runs it again


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


@dataclass(frozen=True)
class Redrive:
    """A claim that ran out with nobody taking it over: the event to publish to its function again."""
    function: str
    key: str
    event_id: str | None
    event_type: str | None
    correlation_id: str | None
    event: bytes | None  # None for claims made before events were kept: those cannot be re-driven
    lease_until: float


class Ledger:
    def __init__(self, engine: Engine, clock=time.time):
        self._engine = engine
        self._clock = clock
        self._insert_new = _insert_ignoring_existing(engine)
        self._insert_new_returning = None
        if self._insert_new is not None and engine.dialect.insert_returning and engine.dialect.use_insertmanyvalues:
            self._insert_new_returning = self._insert_new.returning(
                ledger_table.c.function, ledger_table.c.key, ledger_table.c.owner)
        self._driver_sql = _DriverSQL.for_dialect(engine.dialect)
        self._writes = _GroupCommit(self._write)
        # Shared transactions run one at a time, so they share one connection: checking one out of the
        # pool and back costs six times an empty transaction on SQLite.
        self._write_conn: Connection | None = None
        self._released = False  # close() let the held connection go

    def close(self) -> None:
        """Write the completions still queued and let the held connection go; later writes (by the thread that
        asks) each take a connection from the pool for their transaction.

        The connection is let go by a shared transaction of its own, never beside one: closing it under a
        transaction running on another thread would free what SQLite is still using."""
        self._writes.close()
        self._writes.run(_Call("release", []))

    def claim(self, function: str, key: str, owner: str, lease_s: float, *, event=None) -> Claim:
        return self.claim_many([(function, key, owner, event)], lease_s)[0]

    def claim_many(self, claims: list[tuple[str, str, str, Any]], lease_s: float,
                   as_json: list[str | None] | None = None) -> list[Claim]:
        """Claim several (function, key, owner, event or None) in one transaction; one Claim each, in order.

        Each claim keeps its event as structured-mode JSON: `as_json[i]` when given (the body it came in, which
        the worker has at hand), else the event serialised here."""
        now = self._clock()
        as_json = as_json or [None] * len(claims)
        rows = [{"function": function, "key": key, "status": "running", "owner": owner,
                 "lease_until": now + lease_s, "updated_at": now,
                 "event_id": event.id if event is not None else None,
                 "event_type": event.type if event is not None else None,
                 "correlation_id": event.correlationid if event is not None else None, "result": None,
                 "event": text_json or (event.to_json().decode() if event is not None else None)}
                for (function, key, owner, event), text_json in zip(claims, as_json)]
        return self._writes.run(_Call("claim", rows)) if rows else []

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

    def complete_many(self, completions: list[tuple[str, str, str, dict]]) -> None:
        """Record several (function, key, owner, result) as done, in one shared transaction, and wait for it."""
        self._writes.run(_Call("finish", [self._finish_row(function, key, owner, "done", result)
                                          for function, key, owner, result in completions]))

    def complete_many_later(self, completions: list[tuple[str, str, str, dict]],
                            then: Callable[[BaseException | None], None]) -> None:
        """Record several (function, key, owner, result) as done without waiting: `then(None)` runs once they
        committed, `then(error)` if that failed. It runs on the ledger's writer thread (or another caller's,
        or this one after close()); it must be quick and must not call the ledger."""
        self._writes.submit(_Call("finish", [self._finish_row(function, key, owner, "done", result)
                                             for function, key, owner, result in completions], then))

    def fail(self, function: str, key: str, owner: str, error: str) -> None:
        """Release the claim after a failure, so a retry (or a replay) may claim it again."""
        self._finish(function, key, owner, "failed", {"error": error})

    def reopen(self, function: str, key: str) -> bool:
        """Let an abandoned key be claimed again (a replay after its cause was fixed); False if it was not."""
        with self._engine.begin() as conn:
            return bool(conn.execute(update(ledger_table).where(and_(
                ledger_table.c.function == function, ledger_table.c.key == key, ledger_table.c.status == "abandoned"))
                .values(status="failed", takeovers=0, updated_at=self._clock())).rowcount)

    def now(self) -> float:
        """The ledger's clock, which leases are measured on."""
        return self._clock()

    def take_redrives(self, functions: list[str], after_s: float, limit: int = 100) -> list[Redrive]:
        """Claims of these functions still running although their lease ran out more than `after_s` ago, and
        not re-driven in the last `after_s`: each is marked re-driven now, by exactly one caller, and returned
        to that caller, who publishes its event to the function again.

        A delivery normally takes such a claim over within the retry delay (the message comes back when its
        worker dies); one still running `after_s` later has lost its message. Re-driving one that has not
        costs a duplicate delivery, which the claim absorbs.
        """
        now = self._clock()
        stale = and_(ledger_table.c.status == "running", ledger_table.c.lease_until < now - after_s,
                     or_(ledger_table.c.redriven_at.is_(None), ledger_table.c.redriven_at < now - after_s))
        wanted = set(functions)
        taken = []
        with self._engine.begin() as conn:
            # By the running index alone (a filter on the function would have the database walk every key of
            # those functions instead); the running claims of other functions are few.
            rows = conn.execute(select(ledger_table).where(stale).order_by(ledger_table.c.lease_until)).all()
            for row in [row for row in rows if row.function in wanted][:limit]:
                marked = conn.execute(update(ledger_table).where(and_(
                    stale, ledger_table.c.function == row.function, ledger_table.c.key == row.key))
                    .values(redriven_at=now)).rowcount
                if marked:
                    taken.append(Redrive(row.function, row.key, row.event_id, row.event_type, row.correlation_id,
                                         row.event.encode() if row.event else None, row.lease_until))
        return taken

    def held(self, keys: list[tuple[str, str]]) -> bool:
        """Whether any of these (function, key) is claimed by a worker whose lease still runs."""
        if not keys:
            return False
        these = or_(*[and_(ledger_table.c.function == function, ledger_table.c.key == key) for function, key in keys])
        with self._engine.connect() as conn:
            return conn.execute(select(ledger_table.c.key).where(and_(
                these, ledger_table.c.status == "running", ledger_table.c.lease_until >= self._clock()))).first() \
                is not None

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
        self._writes.run(_Call("finish", [self._finish_row(function, key, owner, status, result)]))

    def _finish_row(self, function, key, owner, status, result) -> dict:
        return {"b_function": function, "b_key": key, "b_owner": owner, "b_status": status,
                "b_result": _NOTHING_EMITTED if result == _NOTHING else json.dumps(result),
                "b_updated_at": self._clock()}

    # -- one shared transaction ----------------------------------------------------
    def _write(self, calls: list[_Call]) -> None:
        """Finishes first, then claims, all in one transaction; each call gets its own result."""
        finishes = [row for call in calls if call.kind == "finish" for row in call.rows]
        claims = [call for call in calls if call.kind == "claim"]
        conn = self._write_conn
        if conn is None or conn.closed:
            conn = self._write_conn = self._engine.connect()
        try:
            with conn.begin():
                self._write_in(conn, finishes, claims)
        except BaseException:
            self._write_conn = None  # whatever broke, the next transaction starts on a fresh connection
            conn.close()
            raise
        if self._released or any(call.kind == "release" for call in calls):
            self._released, self._write_conn = True, None  # closed: hold no connection from now on
            conn.close()

    def _write_in(self, conn: Connection, finishes: list[dict], claims: list[_Call]) -> None:
        if finishes and self._driver_sql is not None:
            self._driver_sql.finish(conn, finishes)
        elif finishes:
            conn.execute(_FINISH, finishes)
        if not claims:
            return
        rows = [row for call in claims for row in call.rows]
        if self._insert_new is None:
            outcomes = iter([self._claim_alone(conn, row) for row in rows])
        else:
            outcomes = iter(self._claim_together(conn, rows))
        for call in claims:
            call.result = [next(outcomes) for _ in call.rows]

    def _claim_together(self, conn: Connection, rows: list[dict]) -> list[Claim]:
        """Insert every key not there yet; a key whose row now names our owner is ours.

        With RETURNING (SQLite >= 3.35, PostgreSQL) the insert itself says which
        rows it wrote, and only the other keys (redeliveries, duplicates) are
        read back; without it every key is read back.
        """
        holders: dict[tuple[str, str], tuple[str, str]] = {}
        if self._driver_sql is not None:
            if self._driver_sql.insert_new(conn, rows):
                return [Claim.RUN] * len(rows)  # every key was new: all ours, nothing to read back
            others = rows
        elif self._insert_new_returning is not None:
            for inserted in conn.execute(self._insert_new_returning, rows):
                holders[(inserted.function, inserted.key)] = (inserted.owner, "running")
            others = [row for row in rows if (row["function"], row["key"]) not in holders]
        else:
            conn.execute(self._insert_new, rows)
            others = rows
        by_function: dict[str, list[str]] = {}
        for row in others:
            by_function.setdefault(row["function"], []).append(row["key"])
        for function, keys in by_function.items():
            for start in range(0, len(keys), 500):  # well under any database's bound-parameter limit
                for held in conn.execute(_HOLDERS, {"b_function": function, "b_keys": keys[start:start + 500]}):
                    holders[(function, held.key)] = (held.owner, held.status)
        outcomes = []
        for row in rows:
            owner, status = holders.get((row["function"], row["key"]), (None, None))
            if owner == row["owner"] and status == "running":
                outcomes.append(Claim.RUN)
            elif status == "done":
                outcomes.append(Claim.DONE)
            else:  # held by another: take it over if it failed or its lease ran out
                outcomes.append(_take_over(conn, row))
        return outcomes

    def _claim_alone(self, conn: Connection, row: dict) -> Claim:
        """For databases without INSERT ... ON CONFLICT DO NOTHING: a savepoint around the insert."""
        try:
            with conn.begin_nested():
                conn.execute(insert(ledger_table).values(**row))
            return Claim.RUN
        except IntegrityError:
            pass
        return _take_over(conn, row)

    @staticmethod
    def _mine(function, key, owner):
        return and_(ledger_table.c.function == function, ledger_table.c.key == key,
                    ledger_table.c.owner == owner, ledger_table.c.status == "running")


def _take_over(conn: Connection, row: dict) -> Claim:
    """A key held by another claim: ours if that one failed or its lease ran out (counting the take-over), unless
    its claims ran out MAX_TAKEOVERS times already: then it is abandoned, for this claim and every later one."""
    now = row["updated_at"]
    this_key = and_(ledger_table.c.function == row["function"], ledger_table.c.key == row["key"])
    ran_out = and_(ledger_table.c.status == "running", ledger_table.c.lease_until < now)
    takeovers = func.coalesce(ledger_table.c.takeovers, 0)
    if conn.execute(
            update(ledger_table)
            .where(and_(this_key, or_(ledger_table.c.status == "failed", and_(ran_out, takeovers < MAX_TAKEOVERS))))
            .values(**{k: v for k, v in row.items() if k not in ("function", "key", "result")},
                    # a failed claim was let go on purpose (a retry, a replay): only ran-out ones count
                    takeovers=case((ledger_table.c.status == "running", takeovers + 1), else_=0))
    ).rowcount:
        return Claim.RUN
    if conn.execute(
            update(ledger_table).where(and_(this_key, ran_out, takeovers >= MAX_TAKEOVERS))
            .values(status="abandoned", updated_at=now,
                    result=json.dumps({"error": ABANDONED_REASON.format(times=MAX_TAKEOVERS + 1)}))
    ).rowcount:
        return Claim.ABANDONED
    status = conn.execute(select(ledger_table.c.status).where(this_key)).scalar()
    return {"done": Claim.DONE, "abandoned": Claim.ABANDONED}.get(status, Claim.BUSY)
