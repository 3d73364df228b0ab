"""The state database a test runs on: SQLite, or a fresh PostgreSQL database of its own.

Tests that take the `state_db_url` fixture run once per database kind chosen:
`--state-db sqlite,postgresql` (or DOPPEL_TEST_DB=...). Unset, SQLite only, and
PostgreSQL too for the tests marked `both_databases` (the representative subset CI
runs on both). On PostgreSQL each test gets a database of its own (CREATE DATABASE
on the test server of tests/services/postgresql.sh, about 0.1 s), dropped after it.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

SQLITE, POSTGRESQL = "sqlite", "postgresql"
KINDS = (SQLITE, POSTGRESQL)
ENV = "DOPPEL_TEST_DB"
PASSWORD_ENV = "DOPPEL_TEST_PG_PASSWORD"
ROOT = Path(__file__).resolve().parents[2]


def add_option(parser) -> None:
    parser.addoption("--state-db", default=os.environ.get(ENV, ""),
                     help="the state databases to run the state_db_url tests on, comma-separated: sqlite, "
                          f"postgresql (default: ${ENV}; unset: sqlite, and postgresql for those marked "
                          "both_databases)")


def kinds_for(config, marked_both: bool) -> list[str]:
    chosen = [k.strip() for k in config.getoption("--state-db").split(",") if k.strip()]
    unknown = set(chosen) - set(KINDS)
    if unknown:
        raise pytest.UsageError(f"--state-db / {ENV}: {', '.join(sorted(unknown))} is not one of {', '.join(KINDS)}")
    if chosen:
        return chosen
    return [SQLITE, POSTGRESQL] if marked_both else [SQLITE]


def parametrize(metafunc) -> None:
    """Run a test that uses state_db_url once per chosen kind; PostgreSQL's runs carry the postgresql mark."""
    if "state_db_url" not in metafunc.fixturenames:
        return
    kinds = kinds_for(metafunc.config, metafunc.definition.get_closest_marker("both_databases") is not None)
    metafunc.parametrize("state_db_kind", [pytest.param(k, marks=pytest.mark.postgresql) if k == POSTGRESQL
                                           else k for k in kinds], indirect=True)


class PostgresServer:
    """The test server; makes and drops a database per test."""

    def __init__(self):
        os.environ.setdefault(PASSWORD_ENV, "doppel-test")
        self.password = os.environ[PASSWORD_ENV]

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://doppel:{self.password}@127.0.0.1:5432/{database}"

    def _admin(self):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=5432, user="doppel", password=self.password,
                               dbname="postgres", autocommit=True)

    def create(self) -> str:
        name = f"doppel_state_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # the test's pools may still hold some


def start_postgresql() -> PostgresServer:
    subprocess.run(["bash", str(ROOT / "tests/services/postgresql.sh")], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("CI") else None)
    return PostgresServer()


_TEMPLATE: list[Path] = []  # a SQLite file at this code's schema, made once per test run


def migrated_engine(url: str | os.PathLike):
    """An engine on the database at `url` (or a SQLite file's path), brought to this code's schema by the
    migrations, as every Doppel process finds its database (the parts' constructors make no table).

    A SQLite file that does not exist yet is a copy of one migrated once per run (about 1 ms, not Alembic's
    60 ms); anything else is upgraded in place (a no-op when current)."""
    import atexit
    import shutil
    import sqlite3
    import tempfile

    from core.db import make_engine
    from doppel import migrations
    if not str(url).startswith(("sqlite:", "postgresql")):
        url = f"sqlite:///{Path(url).resolve()}"
    path = Path(str(url).split(":///", 1)[1]) if str(url).startswith("sqlite:///") else None
    if path is not None and not path.exists():
        if not _TEMPLATE:
            template = Path(tempfile.mkdtemp(prefix="doppel-schema-")) / "template.db"
            made = make_engine(f"sqlite:///{template}")
            migrations.upgrade(made)
            made.dispose()
            atexit.register(shutil.rmtree, template.parent, True)
            _TEMPLATE.append(template)
        source, copy = sqlite3.connect(_TEMPLATE[0]), sqlite3.connect(path)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()
        return make_engine(str(url))
    engine = make_engine(str(url))
    migrations.upgrade(engine)
    return engine


def reversing_unordered_selects(engine):
    """The same SQLite engine, whose connections hand back the rows of a query without ORDER BY in reverse
    (PRAGMA reverse_unordered_selects): a test on it finds an order that a query only had by chance, from the
    way SQLite happened to scan (PostgreSQL promises none)."""
    from sqlalchemy import event

    def _reverse(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA reverse_unordered_selects = ON")
    event.listen(engine, "connect", _reverse)
    engine.dispose()  # connections made before it are not kept
    return engine
