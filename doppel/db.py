"""The SQL database: a SQLite file under ./.doppel/ by default, anything SQLAlchemy speaks otherwise."""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

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
    except Exception:
        return "<unparsable database URL>"
