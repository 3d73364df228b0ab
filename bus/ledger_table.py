"""The idempotency ledger's table: its schema (the migrations make it) and the SQL of the hot path."""
from __future__ import annotations

import json
from operator import itemgetter
from typing import Callable

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

ledger_table = Table(
    "idempotency_ledger", metadata,
    Column("function", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("status", String(16), nullable=False),  # running | done | failed | abandoned
    Column("owner", String(64), nullable=False),
    Column("lease_until", Float, nullable=False),
    Column("event_id", String(255)),
    Column("event_type", String(64)),
    Column("correlation_id", String(255)),
    Column("result", Text),  # JSON: emitted event ids, or the error
    Column("updated_at", Float, nullable=False),
    Column("event", Text),  # the claimed event as structured-mode JSON, so a sweep can publish it again
    Column("takeovers", Integer, nullable=False, server_default="0"),  # claims taken over after their lease ran out
    Column("redriven_at", Float),  # when a sweep last published the event again
)

# Running claims by lease, for the sweep; partial, so finished keys (nearly all of them) are not in it.
running_index = Index("ix_idempotency_ledger_running", ledger_table.c.lease_until,
                      sqlite_where=ledger_table.c.status == "running",
                      postgresql_where=ledger_table.c.status == "running")

# The usual result of a no-op or a function that emitted nothing, serialised once.
_NOTHING = {"emitted": []}
_NOTHING_EMITTED = json.dumps(_NOTHING)

# Statements of the hot path, built once (SQLAlchemy caches their compiled form).
_FINISH = (update(ledger_table)
           .where(and_(ledger_table.c.function == bindparam("b_function"), ledger_table.c.key == bindparam("b_key"),
                       ledger_table.c.owner == bindparam("b_owner"), ledger_table.c.status == "running"))
           .values(status=bindparam("b_status"), result=bindparam("b_result"),
                   updated_at=bindparam("b_updated_at")))

_HOLDERS = (select(ledger_table.c.key, ledger_table.c.owner, ledger_table.c.status)
            .where(and_(ledger_table.c.function == bindparam("b_function"),
                        ledger_table.c.key.in_(bindparam("b_keys", expanding=True)))))


class _DriverSQL:
    """The two statements of the hot path as plain SQL for the database driver.

    SQLAlchemy's Core spends more per row than SQLite does (it builds each row's
    parameters, twice the cost of the write itself in a batch), so the claims of
    a batch go as one executemany INSERT ... ON CONFLICT DO NOTHING, whose row
    count says whether every key was new (the usual case: then all are ours and
    nothing is read back), and its completions as one executemany UPDATE, with
    the driver's own placeholders.
    """
    COLUMNS = ("function", "key", "status", "owner", "lease_until", "updated_at", "event_id", "event_type",
               "correlation_id", "event")

    def __init__(self, quote: Callable[[str], str], mark: str):
        table, column = quote(ledger_table.name), {name: quote(name) for name in (*self.COLUMNS, "result")}
        self._insert = (f"INSERT INTO {table} ({', '.join(column[c] for c in self.COLUMNS)}) "
                        f"VALUES ({', '.join([mark] * len(self.COLUMNS))}) "
                        f"ON CONFLICT ({column['function']}, {column['key']}) DO NOTHING")
        self._finish = (f"UPDATE {table} SET {column['status']} = {mark}, {column['result']} = {mark}, "
                        f"{column['updated_at']} = {mark} WHERE {column['function']} = {mark} AND "
                        f"{column['key']} = {mark} AND {column['owner']} = {mark} AND {column['status']} = 'running'")
        # Each row's parameters in the statement's order, taken from its dict in one call (itemgetter, in C).
        self._insert_values = itemgetter(*self.COLUMNS)
        self._finish_values = itemgetter("b_status", "b_result", "b_updated_at", "b_function", "b_key", "b_owner")

    @classmethod
    def for_dialect(cls, dialect) -> "_DriverSQL | None":
        # SQLite only, the database this path is tested and measured on; others keep SQLAlchemy's statements.
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            return None
        return cls(dialect.identifier_preparer.quote, "?")

    def insert_new(self, conn: Connection, rows: list[dict]) -> bool:
        """Insert the rows whose key is new; True when every one was."""
        inserted = conn.exec_driver_sql(self._insert, list(map(self._insert_values, rows))).rowcount
        return inserted == len(rows)

    def finish(self, conn: Connection, rows: list[dict]) -> None:
        conn.exec_driver_sql(self._finish, list(map(self._finish_values, rows)))


def _insert_ignoring_existing(engine: Engine):
    """INSERT that skips keys already present, where the database has one; None elsewhere."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(engine.dialect.name)
    if dialect is None:
        return None
    return dialect.insert(ledger_table).on_conflict_do_nothing(index_elements=["function", "key"])
