"""A real PostgreSQL on 127.0.0.1 (tests/services/postgresql.sh), a rental shop's production database on it, and an
embedded Doppel whose production holds that database beside the sample's files."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

import functions
from clouds.databases import postgresql
from clouds.databases.servers import Server
from clouds.local.sample import make_sample_production
from doppel.app import App
from doppel.config import parse_config
from tests.integration.databases import rental_shop

ROOT = Path(__file__).resolve().parents[3]
PASSWORD_ENV = "DOPPEL_TEST_PG_PASSWORD"


@pytest.fixture(scope="session")
def pg_server() -> Server:
    """The test server, started by the project's own script (reused when running); its password in the
    environment variable the config names, as in production."""
    os.environ.setdefault(PASSWORD_ENV, "doppel-test")
    subprocess.run(["bash", str(ROOT / "tests/services/postgresql.sh")], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("CI") else None)
    return Server("postgresql", "doppel", host="127.0.0.1", port=5432, password_env=PASSWORD_ENV)


def databases(server: Server) -> set[str]:
    with postgresql.connect(server, "postgres", autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def query(server: Server, database: str, statement: str, params=()) -> list[tuple]:
    """The rows a statement gives ([] for one that gives none, such as ALTER TABLE)."""
    with postgresql.connect(server, database, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


class PgShop:
    """The sample production plus a PostgreSQL database `rentals`, and an embedded Doppel serving every function."""

    def __init__(self, tmp_path: Path, server: Server, rules=None):
        self.server = server
        self.database = f"shop_{uuid.uuid4().hex[:10]}"
        postgresql.create(server, self.database)
        with postgresql.connect(server, self.database) as conn:
            conn.execute(rental_shop.SCHEMA)
            rental_shop.fill(conn.cursor().execute)
        self.production = tmp_path / "production" / "shop"
        entry = make_sample_production(self.production)
        entry["components"].append({"kind": "postgresql", "name": "rentals", "host": "127.0.0.1", "port": 5432,
                                    "database": self.database, "user": "doppel", "password_env": PASSWORD_ENV})
        entry["clone"]["anonymise"] += [{"database": "rentals", **rule}
                                        for rule in (rental_shop.RULES if rules is None else rules)]
        self.entry = entry
        document = {"state_dir": str(tmp_path / "state"), "productions": {"shop": entry},
                    "bus": {"retry": {"attempts": 2, "first_delay": "200ms"}}}
        self.document = document
        self.app = App(parse_config(document, None), role="test", fast_forward=True)
        self.worker = self.app.worker(functions.FUNCTIONS)
        self.worker.start()

    def left_behind(self) -> set[str]:
        """Databases this test's chains made that are still there (its productions aside)."""
        return (set(self.created) & databases(self.server)) - {self.database}

    def connect(self):
        return postgresql.connect(self.server, self.database)

    def query(self, statement: str, database: str | None = None, params=()) -> list[tuple]:
        return query(self.server, database or self.database, statement, params)

    def publish(self, event_type, **data):
        from core.broker import event_message
        from doppel.cli.common import build_event
        event = build_event(event_type, data, source="test")
        self.app.broker.publish([event_message(event)])
        self.app.broker.run_until_idle(timeout=300)
        return event

    def events(self, event_type=None, correlation_id=None):
        return self.app.audit.events(event_type=event_type, correlation_id=correlation_id)


@pytest.fixture
def pg_shop(tmp_path, monkeypatch, pg_server):
    """Makes PgShops; afterwards drops the databases this test made (its productions, and whatever its chains
    created or renamed into place and left), never another's: a bench or a second suite may share the server."""
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    made = []
    created = monkeypatch_made_databases(monkeypatch)

    def make(rules=None) -> PgShop:
        shop = PgShop(tmp_path / f"shop{len(made)}", pg_server, rules)
        shop.created = created
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.app.close()
    for name in sorted(set(created) & databases(pg_server)):
        postgresql.drop(pg_server, name)


def monkeypatch_made_databases(monkeypatch) -> list[str]:
    """The names of the databases created (or renamed to) through clouds.databases.postgresql from now on, in this
    process: the test's own, whichever of its chains made them."""
    created: list[str] = []
    create, rename = postgresql.create, postgresql.rename

    def recording_create(server, database, *args, **kwargs):
        created.append(database)
        return create(server, database, *args, **kwargs)

    def recording_rename(server, old, new):
        created.append(new)
        return rename(server, old, new)

    monkeypatch.setattr(postgresql, "create", recording_create)
    monkeypatch.setattr(postgresql, "rename", recording_rename)
    return created
