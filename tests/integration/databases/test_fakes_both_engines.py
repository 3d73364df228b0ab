"""The same production values, masked under one key in PostgreSQL and in MariaDB, get the same fakes: every method,
the collision-free map of a unique column, and the further attempts for a fake equal to its own value."""
from __future__ import annotations

import datetime
import random
import uuid

import pytest

from clouds.databases import maria_anonymise, mariadb, pg_anonymise, postgresql
from tests.integration.databases.conftest import query

pytestmark = [pytest.mark.postgresql, pytest.mark.mariadb]

KEY = b"one environment's key"
COLUMNS = [  # name, PostgreSQL type, MariaDB type, rule
    ("email", "varchar(120) NOT NULL UNIQUE", "varchar(120) NOT NULL UNIQUE", {"method": "email"}),
    ("first_name", "varchar(60)", "varchar(60)", {"method": "first_name"}),
    ("last_name", "varchar(60)", "varchar(60)", {"method": "last_name"}),
    ("full_name", "varchar(120)", "varchar(120)", {"method": "name"}),
    ("street", "varchar(200)", "varchar(200)", {"method": "address"}),
    ("phone", "varchar(40)", "varchar(40)", {"method": "phone"}),
    ("note", "text", "text", {"method": "text"}),
    ("token", "text", "text", {"method": "hash"}),
    ("number", "bigint", "bigint", {"method": "hash"}),
    ("small", "integer", "int", {"method": "hash"}),
    ("account", "varchar(30)", "varchar(30)", {"method": "digits"}),
    ("card", "varchar(25) NOT NULL", "varchar(25) NOT NULL", {"method": "digits", "check": "luhn"}),
    ("iban", "varchar(40)", "varchar(40)", {"method": "digits", "check": "iban"}),
    ("ticket", "varchar(10) NOT NULL UNIQUE", "varchar(10) NOT NULL UNIQUE", {"method": "digits"}),
    ("pin", "varchar(4)", "varchar(4)", {"method": "digits"}),
    ("code", "smallint NOT NULL UNIQUE", "smallint NOT NULL UNIQUE", {"method": "hash"}),
    ("born", "date", "date", {"method": "date_shift", "days": 400}),
    ("seen", "timestamp", "datetime", {"method": "date_shift", "days": 3}),
]
PHONES = ["+44 20 7946 0{:03d}", "(020) 7946-{:04d}", "07700.900.{:03d}", "ext {}", "+1 555 01{:02d} x#", "0{}\\9"]


def people(count: int = 600, seed: int = 11) -> list[tuple]:
    """Rows with the values that make fakes differ if anything differs: case and trailing-space variants of one
    name, non-ASCII letters, a % in a number, short phones, long text, IBANs in either case, dense pins, unique
    numbers whose fakes clash (PostgreSQL orders 9 before 10, bytes do not)."""
    rng = random.Random(seed)
    tickets = rng.sample(range(10000), count)  # unique, and dense enough that fakes clash and are asked for again
    codes = rng.sample(range(32767), count)  # so are these: which of two clashing ones keeps its fake is by bytes
    rows = []
    for i in range(1, count + 1):
        last = ["Smith", "SMITH", "smith", "Smith ", "Müller", "Ødegård", "O'Brien", "李"][i % 8]
        card = "".join(str(rng.randrange(10)) for _ in range(15 + i % 2))
        rows.append((
            i, f"person.{i}@mail.example.org" if i % 7 else f"Person.{i}@Mail.Example.org",
            ["Ada", "José", "Zoë", "ada"][i % 4], last, f"{['Ada', 'José'][i % 2]} {last}",
            f"{i} High Street, Flat {i % 9}", PHONES[i % len(PHONES)].format(i % 1000) if i % 5 else None,
            ("lorem ipsum dolor " * (i % 40)).strip() or "x", f"token-{i % 30}", rng.randrange(1 << 62),
            rng.randrange(-5000, 5000), f"{i % 17:05d}-{i % 3}%", card if i % 3 else f"{card[:4]} {card[4:8]}",
            f"{['gb', 'DE', 'fr'][i % 3]}{i % 90 + 10} ABCD {i:06d} {i * 7 % 100:02d}" if i % 4 else "0 12 34",
            f"{tickets[i - 1]:04d}", f"{i % 60:02d}", codes[i - 1],
            datetime.date(1950, 1, 1) + datetime.timedelta(days=i * 97), datetime.datetime(2024, 3, 1, i % 24, i % 60)))
    return rows


@pytest.fixture
def both(pg_server, maria_server):
    """A table of people on each server, the same rows in both; dropped afterwards."""
    name = f"doppel_test_fakes_{uuid.uuid4().hex[:10]}"
    rows = people()
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    postgresql.create(pg_server, name)
    mariadb.create(maria_server, name)
    try:
        with postgresql.connect(pg_server, name) as conn:
            conn.execute(f"CREATE TABLE person (id int PRIMARY KEY, {', '.join(f'{c} {t}' for c, t, _, _ in COLUMNS)})")
            conn.cursor().executemany(f"INSERT INTO person VALUES ({marks})", rows)
        with mariadb.connect(maria_server, name) as conn, conn.cursor() as cursor:
            columns = ", ".join(f"{c} {t}" for c, _, t, _ in COLUMNS)
            cursor.execute(f"CREATE TABLE person (id int PRIMARY KEY, {columns}) CHARACTER SET utf8mb4")
            cursor.executemany(f"INSERT INTO person VALUES ({marks})", rows)
            conn.commit()
        yield name
    finally:
        postgresql.drop(pg_server, name)
        mariadb.drop(maria_server, name)


def test_every_method_gives_the_same_fakes_in_postgresql_and_mariadb(pg_server, maria_server, both):
    # Given the same people in a PostgreSQL and a MariaDB database
    rules = [{"table": "person", "column": column, **rule} for column, _, _, rule in COLUMNS]
    selected = f"SELECT id, {', '.join(c for c, _, _, _ in COLUMNS)} FROM person ORDER BY id"
    before = query(pg_server, both, selected)

    # When each is anonymised under one environment's key
    pg_anonymise.anonymise(pg_server, both, rules, KEY)
    maria_anonymise.anonymise(maria_server, both, rules, KEY)

    # Then every value has the same fake in both, column by column
    in_pg, in_maria = query(pg_server, both, selected), query(maria_server, both, selected)
    for index, (column, _, _, _) in enumerate(COLUMNS, start=1):
        differ = [(pg[0], pg[index], maria[index]) for pg, maria in zip(in_pg, in_maria) if pg[index] != maria[index]]
        assert not differ, f"{column}: {differ[:3]}"
    # and they are fakes: no masked column kept a production value in its row
    assert all(after[i] != was[i] for after, was in zip(in_pg, before) for i in range(1, len(COLUMNS) + 1)
               if was[i] is not None)
