"""MariaDB anonymisation on a real server, called directly: the per-row after-check and a fixed value as a literal,
as test_pg_anonymise.py holds PostgreSQL's."""
from __future__ import annotations

import datetime
import uuid

import pytest

from clouds.databases import maria_anonymise, maria_fakes, mariadb
from clouds.databases.servers import DatabaseError
from tests.integration.databases.conftest import query

pytestmark = pytest.mark.mariadb

KEY = b"k" * 32
RULES = [{"table": "person", "column": "email", "method": "email"},
         {"table": "person", "column": "phone", "method": "phone"},
         {"table": "person", "column": "card", "method": "digits", "check": "luhn"}]
DATE_SHIFT = {"table": "person", "column": "joined", "method": "date_shift", "days": 2}


@pytest.fixture
def people(maria_server):
    """A database of 600 people whose join dates fill 100 consecutive days; dropped afterwards."""
    made = []

    def make() -> str:
        name = f"doppel_test_anon_{uuid.uuid4().hex[:10]}"
        mariadb.create(maria_server, name)
        made.append(name)
        with mariadb.connect(maria_server, name) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE person (id int PRIMARY KEY, email varchar(80) NOT NULL UNIQUE, "
                           "phone varchar(40), card varchar(20) NOT NULL, joined date NOT NULL, note text)")
            cursor.executemany("INSERT INTO person VALUES (%s, %s, %s, %s, %s, %s)", [
                (i, f"person{i}@mail.example.org", f"+44 20 7946 {i:04d}", f"4{i * 7919:015d}",
                 datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 100), f"n{i}") for i in range(1, 601)])
            conn.commit()
        return name

    yield make
    for name in made:
        mariadb.drop(maria_server, name)


def rows(server, database) -> dict[int, tuple]:
    return {row[0]: row[1:] for row in query(server, database, "SELECT id, email, phone, card, joined, note "
                                                               "FROM person")}


def test_date_shift_on_dense_dates_changes_every_row_though_fakes_equal_other_rows_dates(maria_server, people):
    # Given 600 people whose join dates fill 100 consecutive days, shifted by at most 2 days
    database = people()
    before = rows(maria_server, database)

    maria_anonymise.anonymise(maria_server, database, RULES + [DATE_SHIFT], KEY)

    # Then the clone is made: every row's date moved by 1 or 2 days, the same production day the same way,
    after = rows(maria_server, database)
    moved = {before[i][3]: after[i][3] - before[i][3] for i in before}
    assert set(moved.values()) <= {datetime.timedelta(days=d) for d in (-2, -1, 1, 2)}
    assert all(after[i][3] - before[i][3] == moved[before[i][3]] for i in before)
    # though shifted dates are other rows' production dates (what a check against every row would refuse)
    assert {row[3] for row in after.values()} & {row[3] for row in before.values()}


def test_a_date_left_as_it_was_in_its_own_row_fails_the_clone_and_keeps_nothing(maria_server, people, monkeypatch):
    # Given a date_shift that (by a bug) gives each date back unchanged
    database = people()
    make = maria_fakes.fake
    monkeypatch.setattr(maria_fakes, "fake", lambda method, value, *rest: f"({value})" if method == "date_shift"
                        else make(method, value, *rest))

    with pytest.raises(DatabaseError, match=r"person.joined still holds 200 production value\(s\) in the same row"):
        maria_anonymise.anonymise(maria_server, database, RULES + [DATE_SHIFT], KEY)

    assert rows(maria_server, database)[1][0] == "person1@mail.example.org"  # rolled back, email included


def test_a_fixed_value_with_quotes_and_percents_is_written_as_it_is_beside_a_custom_sql_rule(maria_server, people):
    database = people()

    changed = maria_anonymise.anonymise(maria_server, database, [
        {"table": "person", "column": "email", "method": "email"},
        {"table": "person", "column": "phone", "method": "fixed", "value": "100% O'Brien's \\ %s"},
        {"table": "person", "column": "card", "method": "sql", "expression": "CONCAT('card ', LENGTH(value) % 7)"},
        {"table": "person", "column": "note", "method": "null"}], KEY)

    after = rows(maria_server, database)
    assert {row[1:3] for row in after.values()} == {("100% O'Brien's \\ %s", "card 2")}
    assert {row[4] for row in after.values()} == {None}
    assert changed["person.phone (fixed)"] == changed["person.note (null)"] == changed["person.email (email)"] == 600
