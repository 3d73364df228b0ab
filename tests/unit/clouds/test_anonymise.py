"""Anonymisation: deterministic within an environment, different across environments, in the copy only."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from clouds.local.sqlite import SqliteError, anonymise_database
from clouds.rewrite import Pseudonyms
from core.cloud import DriverError

SALT_A, SALT_B = b"a" * 32, b"b" * 32


def test_the_same_value_gives_the_same_fake_with_one_salt_and_another_with_another():
    env_a, again, env_b = Pseudonyms(SALT_A), Pseudonyms(SALT_A), Pseudonyms(SALT_B)
    for method in ("email", "name", "phone", "hash"):
        assert env_a.fake(method, "alice@example.net") == again.fake(method, "alice@example.net")
        assert env_a.fake(method, "alice@example.net") != env_b.fake(method, "alice@example.net")
        assert env_a.fake(method, "alice@example.net") != env_a.fake(method, "bruno@example.net")
    assert env_a.fake("email", None) is None


def test_fakes_look_like_what_they_replace():
    fake = Pseudonyms(SALT_A)
    assert re.fullmatch(r"[a-z]+\.[a-z]+\.[0-9a-f]{10}@example\.com", fake.email("alice.smith@example.net"))
    assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", fake.name("Alice Smith"))
    phone = fake.phone("+44 7700 900123")
    assert re.fullmatch(r"\+\d\d \d{4} \d{6}", phone) and phone != "+44 7700 900123"
    assert re.fullmatch(r"[0-9a-f]{32}", fake.hash("10.0.0.1"))


def test_a_short_salt_is_refused():
    with pytest.raises(ValueError, match="16 random bytes"):
        Pseudonyms(b"short")


def _emails(database: str) -> dict[int, str]:
    connection = sqlite3.connect(database)
    try:
        return dict(connection.execute("SELECT id, email FROM customers"))
    finally:
        connection.close()


def test_one_email_gets_one_fake_within_an_env_and_another_in_the_next_env(production, make_env):
    # Given a policy that pseudonymises the audit log's copy of each email instead of emptying it
    policy = dict(production[1]["clone"])
    policy["anonymise"] = [rule for rule in policy["anonymise"] if rule["table"] != "audit_log"] + [
        {"database": "main", "table": "audit_log", "column": "customer_email", "method": "email"}]
    _s, _st, env_a, _secrets = make_env("pr-a", policy=policy)
    _s, _st, env_b, _secrets = make_env("pr-b", policy=policy)
    emails_a, emails_b = _emails(env_a["db_main_path"]), _emails(env_b["db_main_path"])
    # Then within one env the same email is the same fake in both tables
    connection = sqlite3.connect(env_a["db_main_path"])
    signed_up = {row[0] for row in connection.execute(
        "SELECT customer_email FROM audit_log WHERE action = 'signed up'")}
    connection.close()
    assert signed_up == set(emails_a.values())
    # and across envs the fakes differ for every customer
    assert emails_a.keys() == emails_b.keys()
    assert all(emails_a[key] != emails_b[key] for key in emails_a)


def test_anonymising_never_touches_production(production, make_env):
    root, _entry = production
    before = _emails(str(root / "data" / "shop.db"))
    make_env("pr-1")
    assert _emails(str(root / "data" / "shop.db")) == before


def test_a_rule_on_a_missing_column_names_it_and_the_columns_there(production, make_env):
    policy = dict(production[1]["clone"])
    policy["anonymise"] = [{"database": "main", "table": "customers", "column": "mail", "method": "email"}]
    with pytest.raises(DriverError, match=r"no column 'mail' \(it has: id, name, email, phone, created_at\)"):
        make_env("pr-1", policy=policy)


def test_null_on_a_not_null_column_is_rolled_back_with_a_hint(tmp_path):
    database = tmp_path / "x.db"
    connection = sqlite3.connect(database)
    connection.executescript("CREATE TABLE t (email TEXT NOT NULL, note TEXT); "
                             "INSERT INTO t VALUES ('a@example.net', 'n');")
    connection.close()
    rules = [{"table": "t", "column": "note", "method": "null"}, {"table": "t", "column": "email", "method": "null"}]
    with pytest.raises(SqliteError, match="use method: hash instead of null"):
        anonymise_database(database, rules, Pseudonyms(SALT_A))
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT email, note FROM t").fetchall() == [("a@example.net", "n")]
    connection.close()


def test_index_statistics_of_anonymised_tables_are_dropped(tmp_path):
    database = tmp_path / "x.db"
    connection = sqlite3.connect(database)
    connection.executescript("CREATE TABLE t (email TEXT); CREATE INDEX t_email ON t (email);"
                             "INSERT INTO t VALUES ('a@example.net'), ('b@example.net'); ANALYZE;")
    connection.close()
    anonymise_database(database, [{"table": "t", "column": "email", "method": "email"}], Pseudonyms(SALT_A))
    assert b"a@example.net" not in Path(database).read_bytes()
