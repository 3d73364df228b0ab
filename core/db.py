"""The SQL database: a SQLite file under ./.doppel/ by default, anything SQLAlchemy speaks otherwise."""
from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError

DEFAULT_DIR = Path(".doppel")


def database_url(state_dir: Path | None = None) -> str:
    url = os.environ.get("DOPPEL_DB_URL")
    if url:
        return url
    directory = state_dir or DEFAULT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / 'doppel.db').resolve()}"


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, future=True)
    engine = create_engine(url, future=True, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # WAL lets readers (the CLI, the status API) run beside the writing workers;
        # NORMAL sync is durable across process crashes, which is what the ledger needs.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def redact_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - whatever the URL is, this must not raise or show it
        return "<unparsable database URL>"


def create_tables(metadata: MetaData, engine: Engine, attempts: int = 5) -> None:
    """`metadata.create_all`, again if another process created a table at the same moment.

    `create_all` checks, then creates: two replicas starting together on a fresh
    database both see no table and the slower one fails with "already exists".
    """
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine)
            return
        except DatabaseError as exc:
            text = str(exc).lower()
            if attempt == attempts or not ("already exists" in text or "duplicate key" in text):
                raise
            time.sleep(0.1 * attempt)
