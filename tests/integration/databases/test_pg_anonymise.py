"""PostgreSQL anonymisation on a real server, called directly: what each fake is made of, and the after-check."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from clouds.databases import pg_anonymise, pg_fakes, postgresql
from clouds.databases.servers import DatabaseError
from tests.integration.databases.conftest import query

pytestmark = pytest.mark.postgresql

KEY, OTHER_KEY = b"k" * 32, b"o" * 32
PEOPLE = """
CREATE TABLE person (id int PRIMARY KEY, email text NOT NULL UNIQUE, phone text, card text NOT NULL,
                     joined date NOT NULL, note text);
INSERT INTO person
  SELECT i, 'person' || i || '@mail.example.org',
         CASE WHEN i % 3 = 0 THEN NULL ELSE '+44 20 7946 ' || lpad(i::text, 4, '0') END,
         '4' || lpad((i * 7919)::text, 15, '0'), date '2024-01-01' + i % 100, 'n' || i
    FROM generate_series(1, 600) AS i;
"""
RULES = [{"table": "person", "column": "email", "method": "email"},
         {"table": "person", "column": "phone", "method": "phone"},
         {"table": "person", "column": "card", "method": "digits", "check": "luhn"},
         {"table": "person", "column": "note", "method": "hash"}]


@pytest.fixture
def people(pg_server):
    """A database of 600 people whose join dates fill 100 consecutive days; dropped afterwards."""
    made = []

    def make() -> str:
        name = f"doppel_test_anon_{uuid.uuid4().hex[:10]}"
        postgresql.create(pg_server, name)
        made.append(name)
        with postgresql.connect(pg_server, name) as conn:
            conn.execute(PEOPLE)
        return name

    yield make
    for name in made:
        postgresql.drop(pg_server, name)


def rows(server, database) -> dict[int, tuple]:
    found = query(server, database, "SELECT id, email, phone, card, joined, note FROM person")
    return {row[0]: row[1:] for row in found}


def test_date_shift_on_dense_dates_changes_every_row_though_fakes_equal_other_rows_dates(pg_server, people):
    # Given 600 people whose join dates fill 100 consecutive days, shifted by at most 2 days
    database = people()
    before = rows(pg_server, database)

    pg_anonymise.anonymise(pg_server, database, RULES + [
        {"table": "person", "column": "joined", "method": "date_shift", "days": 2}], KEY)

    # Then the clone is made: every row's date moved by 1 or 2 days, the same production day the same way,
    after = rows(pg_server, database)
    moved = {before[i][3]: after[i][3] - before[i][3] for i in before}
    assert set(moved.values()) <= {timedelta(days=d) for d in (-2, -1, 1, 2)}
    assert all(after[i][3] - before[i][3] == moved[before[i][3]] for i in before)
    # though shifted dates are other rows' production dates (what the after-check used to refuse)
    assert {row[3] for row in after.values()} & {row[3] for row in before.values()}


def test_every_fake_is_made_from_the_values_hmac_under_the_key(pg_server, people):
    # Given two copies of one production, anonymised under one key, and a third under another
    first, second, third = people(), people(), people()
    before = rows(pg_server, first)

    for database, key in ((first, KEY), (second, KEY), (third, OTHER_KEY)):
        pg_anonymise.anonymise(pg_server, database, RULES, key)

    one, again, other = rows(pg_server, first), rows(pg_server, second), rows(pg_server, third)
    # Then one key gives the same fakes, another key others
    assert one == again
    assert all(one[i][0] != other[i][0] and one[i][3] == other[i][3] for i in one)
    # and a hash is the HMAC-SHA256 of method|value under the key
    assert one[5][4] == pg_fakes.reference_mac(KEY, "hash|" + before[5][4]).hex()
    # No fake is its own production value; the unique email stays unique; a missing phone stays missing
    for i in before:
        assert all(one[i][c] != before[i][c] for c in (0, 2, 4)), i
        assert one[i][1] is None if before[i][1] is None else one[i][1] != before[i][1]
    assert len({row[0] for row in one.values()}) == len(one)
    # Shapes are kept: phones' punctuation, cards' length and Luhn check digit
    assert all(row[1] is None or re.fullmatch(r"\+\d\d \d\d \d{4} \d{4}", row[1]) for row in one.values())
    assert all(len(row[2]) == 16 and _luhn_ok(row[2]) for row in one.values())


def test_a_date_left_as_it_was_in_its_own_row_fails_the_clone_and_keeps_nothing(pg_server, people, monkeypatch):
    # Given a date_shift that (by a bug) gives each date back unchanged
    database = people()
    make = pg_fakes.fake
    monkeypatch.setattr(pg_fakes, "fake", lambda method, value, *rest: f"({value})" if method == "date_shift"
                        else make(method, value, *rest))

    with pytest.raises(DatabaseError, match=r"person.joined still holds 200 production value\(s\) in the same row"):
        pg_anonymise.anonymise(pg_server, database, RULES + [
            {"table": "person", "column": "joined", "method": "date_shift", "days": 2}], KEY)

    assert rows(pg_server, database)[1][0] == "person1@mail.example.org"  # rolled back, email included


def test_fixed_null_and_custom_sql_rules_share_one_table_with_a_percent_in_the_expression(pg_server, people):
    database = people()

    changed = pg_anonymise.anonymise(pg_server, database, [
        {"table": "person", "column": "email", "method": "email"},
        {"table": "person", "column": "phone", "method": "fixed", "value": "100% unknown"},
        {"table": "person", "column": "card", "method": "sql", "expression": "'card ' || (length(value) % 7)"},
        {"table": "person", "column": "note", "method": "null"}], KEY)

    after = rows(pg_server, database)
    assert {row[1:3] for row in after.values()} == {("100% unknown", "card 2")}
    assert {row[4] for row in after.values()} == {None}
    assert changed["person.phone (fixed)"] == changed["person.note (null)"] == changed["person.email (email)"] == 600


def _luhn_ok(number: str) -> bool:
    total = sum(d if i % 2 == 0 else (d * 2 // 10 + d * 2 % 10) for i, d in enumerate(map(int, reversed(number))))
    return total % 10 == 0
