"""A real PostgreSQL and a real MariaDB on 127.0.0.1 (tests/services/postgresql.sh, mariadb.sh), a rental shop's
production database on either, and an embedded Doppel whose production holds that database beside the sample's
files."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

import functions
from clouds.databases import mariadb, postgresql
from clouds.databases.servers import Server, env_database, snapshot_database
from clouds.local.sample import make_sample_production
from doppel.app import App
from doppel.config import parse_config
from tests.integration.databases import rental_shop

ROOT = Path(__file__).resolve().parents[3]
PASSWORD_ENV = "DOPPEL_TEST_PG_PASSWORD"
MARIADB_PASSWORD_ENV = "DOPPEL_TEST_MARIADB_PASSWORD"  # the variable tests/services/mariadb.sh reads too


@pytest.fixture(scope="session")
def pg_server() -> Server:
    """The test server, started by the project's own script (reused when running); its password in the
    environment variable the config names, as in production."""
    os.environ.setdefault(PASSWORD_ENV, "doppel-test")
    subprocess.run(["bash", str(ROOT / "tests/services/postgresql.sh")], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("CI") else None)
    return Server("postgresql", "doppel", host="127.0.0.1", port=5432, password_env=PASSWORD_ENV)


@pytest.fixture(scope="session")
def maria_server() -> Server:
    """The MariaDB test server, started by the project's own script (reused when running)."""
    os.environ.setdefault(MARIADB_PASSWORD_ENV, "doppel-test")
    subprocess.run(["bash", str(ROOT / "tests/services/mariadb.sh")], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("CI") else None)
    return Server("mariadb", "doppel", host="127.0.0.1", port=3306, password_env=MARIADB_PASSWORD_ENV)


def databases(server: Server) -> set[str]:
    if server.engine == "mariadb":
        return {row[0] for row in query(server, None, "SHOW DATABASES")}
    with postgresql.connect(server, "postgres", autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def query(server: Server, database: str | None, statement: str, params=()) -> list[tuple]:
    """The rows a statement gives ([] for one that gives none, such as ALTER TABLE)."""
    if server.engine == "mariadb":
        with mariadb.connect(server, database, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(statement, params or None)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    with postgresql.connect(server, database, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def make_rental_shop(server: Server, database: str | None = None) -> str:
    """A new production database holding the rental shop, on `server` (named `database`, or a fresh name); its
    name."""
    database = database or f"shop_{uuid.uuid4().hex[:10]}"
    if server.engine == "mariadb":
        mariadb.create(server, database)
        with mariadb.connect(server, database) as conn, conn.cursor() as cursor:
            for statement in filter(str.strip, rental_shop.SCHEMA.split(";")):
                cursor.execute(statement)
            rental_shop.fill(cursor.execute)
            conn.commit()
        return database
    postgresql.create(server, database)
    with postgresql.connect(server, database) as conn:
        conn.execute(rental_shop.SCHEMA)
        rental_shop.fill(conn.cursor().execute)
    return database


def server_component(server: Server, database: str, name: str = "rentals") -> dict:
    return {"kind": server.engine, "name": name, "host": server.host, "port": server.port, "database": database,
            "user": server.user, "password_env": server.password_env}


class PgShop:
    """The sample production plus a database `rentals` (PostgreSQL, or the server's engine), and an embedded Doppel
    serving every function; `also` adds more servers' rental shops, named by their engine."""

    def __init__(self, tmp_path: Path, server: Server, rules=None, also: tuple[Server, ...] = (), dr=None):
        self.server = server
        self.database = make_rental_shop(server)
        self.production = tmp_path / "production" / "shop"
        entry = make_sample_production(self.production)
        entry["components"].append(server_component(server, self.database))
        entry["clone"]["anonymise"] += [{"database": "rentals", **rule}
                                        for rule in (rental_shop.RULES if rules is None else rules)]
        self.others = {}
        for other in also:
            self.others[other.engine] = (other, make_rental_shop(other))
            entry["components"].append(server_component(other, self.others[other.engine][1], other.engine))
            entry["clone"]["anonymise"] += [{"database": other.engine, **rule} for rule in rental_shop.RULES]
        self.entry = entry
        document = {"state_dir": str(tmp_path / "state"), "productions": {"shop": entry},
                    "bus": {"retry": {"attempts": 2, "first_delay": "200ms"}}, **({"dr": dr} if dr else {})}
        self.document = document
        self.app = App(parse_config(document, None), role="test", fast_forward=True)
        self.worker = self.app.worker(functions.FUNCTIONS)
        self.worker.start()

    def connect(self):
        if self.server.engine == "mariadb":
            return mariadb.connect(self.server, self.database)
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

    def left_behind(self, env: str) -> list[str]:
        """The databases made for `env` (its own, its snapshots') still on the servers. Only those: the servers
        are shared, and other runs make and drop doppel_* databases of their own meanwhile."""
        names = ["rentals", *self.others]
        snapshots = [e.data["snapshot"]["id"] for e in self.events("snapshot.done") if e.data["env"] == env]
        mine = {env_database(env, name) for name in names} | {snapshot_database(s, n) for s in snapshots
                                                               for n in names}
        servers = [self.server, *(server for server, _ in self.others.values())]
        return sorted(mine & set().union(*(databases(server) for server in servers)))


def _shops(tmp_path, monkeypatch, servers: list[Server]):
    """Makes PgShops on `servers`; afterwards drops the databases this test made (its productions, and whatever its
    chains created or renamed into place and left), never another's: a bench or a second suite may share a server."""
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    made = []
    created = {"postgresql": monkeypatch_made_databases(monkeypatch, postgresql),
               "mariadb": monkeypatch_made_databases(monkeypatch, mariadb)}

    def make(rules=None, also: tuple[Server, ...] = (), dr=None) -> PgShop:
        shop = PgShop(tmp_path / f"shop{len(made)}", servers[0], rules, also, dr)
        shop.created = created[servers[0].engine]
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.app.close()
    for server in servers:
        for name in sorted(set(created[server.engine]) & databases(server)):
            (mariadb if server.engine == "mariadb" else postgresql).drop(server, name)


@pytest.fixture
def pg_shop(tmp_path, monkeypatch, pg_server):
    yield from _shops(tmp_path, monkeypatch, [pg_server])


@pytest.fixture
def maria_shop(tmp_path, monkeypatch, maria_server):
    """A rental shop on MariaDB, as pg_shop makes one on PostgreSQL."""
    yield from _shops(tmp_path, monkeypatch, [maria_server])


@pytest.fixture
def both_shops(tmp_path, monkeypatch, pg_server, maria_server):
    """make() gives a production with a PostgreSQL `rentals` and a MariaDB `mariadb` rental shop."""
    shops = _shops(tmp_path, monkeypatch, [pg_server, maria_server])
    make = next(shops)
    yield lambda rules=None: make(rules, also=(maria_server,))
    next(shops, None)


def monkeypatch_made_databases(monkeypatch, engine) -> list[str]:
    """The names of the databases created (or renamed to) through `engine` (clouds.databases.postgresql or
    .mariadb) from now on, in this process: the test's own, whichever of its chains made them."""
    created: list[str] = []
    create, rename = engine.create, engine.rename

    def recording_create(server, database, *args, **kwargs):
        created.append(database)
        return create(server, database, *args, **kwargs)

    def recording_rename(server, old, new):
        created.append(new)
        return rename(server, old, new)

    monkeypatch.setattr(engine, "create", recording_create)
    monkeypatch.setattr(engine, "rename", recording_rename)
    return created
