"""The state database's schema revisions (Alembic, in versions/): where a database stands, and bringing it up.

Every process checks its database before using it (`App.engine`): at this code's
revision, it goes on; brand-new and empty, it is made at that revision on the spot
(so `doppel demo` needs no step first); at an older revision, or made before
migrations (Doppel tables but no alembic_version), it refuses with the command to
run, `doppel db upgrade`, which only an operator runs, once, for every replica.

The check is one SELECT of alembic_version, with no look at the catalogue, and
imports no Alembic: REVISIONS lists the revisions in order (a test holds it equal
to versions/), so the usual answer costs one round trip.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError

from core.errors import ConfigError

log = logging.getLogger(__name__)

REVISIONS = ("0001", "0002", "0003", "0004")  # oldest first; the last is this code's
HEAD = REVISIONS[-1]
UPGRADE = "doppel db upgrade"
VERSION_TABLE = "alembic_version"
# Tables a Doppel database holds at the baseline: one of them without alembic_version is a pre-migrations database.
BASELINE_TABLES = frozenset({
    "environments", "environment_transitions", "audit_events", "dr_state", "dr_drills", "backups",
    "idempotency_ledger", "scheduler_lease", "scheduler_expiries", "scheduler_pauses", "scheduler_outbox",
    "chat_approvals", "embedded_parked"})
_PG_LOCK = 0x646F7070656C  # "doppel": one upgrade at a time on a PostgreSQL database


class SchemaNotCurrent(ConfigError):
    """The database's schema is not the one this code reads and writes; the message says what to run."""


@dataclass(frozen=True)
class Status:
    revision: str | None  # alembic_version's, None when there is none
    doppel_tables: bool  # any of Doppel's tables present

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.doppel_tables

    @property
    def current(self) -> bool:
        return self.revision == HEAD

    @property
    def known(self) -> bool:
        return self.revision is None or self.revision in REVISIONS

    def describe(self) -> str:
        if self.empty:
            return "empty"
        if self.revision is None:
            return "made before schema migrations (no revision)"
        return f"revision {self.revision}" + ("" if self.known else " (unknown to this Doppel)")


def all_metadata() -> MetaData:
    """Every table the code reads and writes, in one MetaData (what versions/ must produce at HEAD)."""
    from bus import ledger_table
    from bus.memory import parked_table
    from core import audit, catalogue, dr_state, logbook, registry
    from gateway import approvals
    from scheduler import tables
    combined = MetaData()
    for module in (registry, audit, dr_state, catalogue, logbook, ledger_table, tables, approvals):
        for table in module.metadata.sorted_tables:
            table.to_metadata(combined)
    parked_table(combined)
    return combined


def status(engine_or_conn: Engine | Connection) -> Status:
    """Where the database stands; one query when it has a revision."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return status(conn)
    conn = engine_or_conn
    names = set(inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE in names:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        revision = rows[0] if rows else None
    return Status(revision, bool(names & BASELINE_TABLES))


def at_head(engine: Engine) -> bool:
    """Whether the database's revision is HEAD, in one SELECT (no catalogue look): every process's usual answer."""
    with engine.connect() as conn:
        try:
            rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        except DatabaseError:  # no such table: a new database, or one made before migrations
            return False
    return bool(rows) and rows[0] == HEAD


def ensure_current(engine: Engine, where: str) -> None:
    """Go on at HEAD; make an empty database at HEAD; refuse anything else, saying what to run."""
    if at_head(engine):
        return
    found = status(engine)
    if found.current:
        return
    if found.empty:
        upgrade(engine)
        return
    if not found.known:
        raise SchemaNotCurrent(
            f"the database {where} is at schema revision {found.revision}, which this Doppel does not know (its "
            f"newest is {HEAD}): a newer Doppel upgraded it; run that version, or restore the database from "
            "before the upgrade")
    raise SchemaNotCurrent(
        f"the database {where} is {found.describe()}, older than this Doppel's schema (revision {HEAD}); "
        f"stop every Doppel process, back the database up, run `{UPGRADE}` once, then start them again")


def upgrade(engine: Engine, attempts: int = 5) -> tuple[Status, Status]:
    """Bring the database to HEAD; (before, after). Safe to run again, and beside another process doing the
    same: on PostgreSQL they queue on an advisory lock; on SQLite the slower one finds the work done."""
    for attempt in range(1, attempts + 1):
        try:
            return _upgrade_once(engine)
        except DatabaseError:
            if attempt == attempts:
                raise
            time.sleep(0.1 * attempt)
            if status(engine).current:  # another process made the same tables at the same moment
                found = status(engine)
                return found, found
    raise AssertionError("unreachable")


def _upgrade_once(engine: Engine) -> tuple[Status, Status]:
    from alembic import command
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines name every step; ours says what changed
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        before = status(conn)
        if not before.known:
            raise SchemaNotCurrent(f"the database is at schema revision {before.revision}, newer than this Doppel's "
                                   f"{HEAD}: upgrade Doppel instead")
        if not before.current:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        after = status(conn)
    if before != after:
        log.info("database schema: %s -> %s", before.describe(), after.describe())
    return before, after
