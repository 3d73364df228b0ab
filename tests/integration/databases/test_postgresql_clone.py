"""A production with a PostgreSQL database, cloned by the whole chain on a real server while a writer keeps
inserting: one point in time, anonymised inside the clone with every join kept, or failed with nothing left."""
from __future__ import annotations

import random
import threading

import pytest

from clouds.databases import postgresql
from clouds.databases.servers import env_database
from core.registry import FAILED, READY
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import databases

pytestmark = pytest.mark.postgresql


def personal_values(shop, database=None) -> dict[tuple[str, str], set]:
    return {(table, column): {row[0] for row in shop.query(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL",
                                                            database)}
            for table, column in rental_shop.PERSONAL}


def orphans(shop, database: str) -> dict[str, int]:
    """Rows of each foreign key's table whose key finds no row in the table it references."""
    found = {}
    for child, columns, parent, referenced in rental_shop.FOREIGN_KEYS:
        on = " AND ".join(f"c.{a} = p.{b}" for a, b in zip(columns, referenced))
        present = " AND ".join(f"c.{a} IS NOT NULL" for a in columns)
        found[f"{child}({', '.join(columns)})"] = shop.query(
            f"SELECT count(*) FROM {child} c WHERE {present} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {on})",
            database)[0][0]
    return found


def test_a_clone_is_one_moment_of_production_anonymised_with_every_join_kept(pg_shop, monkeypatch):
    shop = pg_shop()
    before = personal_values(shop)
    # Besides the writer, one transaction is committed at a known moment: just after the clone's snapshot is
    # taken and before any row is copied. A clone of one moment has none of it; one that reads table by table
    # as it goes has it.
    join = postgresql.SnapshotTransaction.join

    def join_after_a_late_commit(snapshot):
        with once:
            if not late.is_set():
                with shop.connect() as conn:
                    rental_shop.add_rental(conn.cursor().execute, 99_999, random.Random(1), 60)
                late.set()
        return join(snapshot)

    late, once = threading.Event(), threading.Lock()
    monkeypatch.setattr(postgresql.SnapshotTransaction, "join", join_after_a_late_commit)
    writer = rental_shop.Writer(shop.connect, first_id=10_000)
    writer.start()
    try:
        writer.wait_for(20)
        shop.publish("env.requested", env="perf-test", production="shop")
        at_clone = writer.committed
        writer.wait_for(at_clone + 20)  # production kept taking writes after the clone, and still does
    finally:
        writer.stop()
    assert writer.error is None
    env = shop.app.registry.living("perf-test")
    assert env.state == READY, env.reason
    clone = env.endpoints["db_rentals_database"]
    assert clone == env_database("perf-test", "rentals") and env.endpoints["db_rentals_port"] == 5432

    # One point in time: what the writer's transactions add up to agrees with the rows they wrote
    rentals, paid = shop.query("SELECT rentals, paid FROM ledger", clone)[0]
    assert shop.query("SELECT count(*), sum(amount) FROM payment", clone)[0] == (rentals, paid)
    assert shop.query("SELECT count(*) FROM rental", clone)[0][0] == rentals
    assert 120 + 20 <= rentals < shop.query("SELECT rentals FROM ledger")[0][0]  # not today's: the clone's moment
    assert late.is_set() and not shop.query("SELECT * FROM rental WHERE rental_id = 99999", clone)
    assert not shop.query("SELECT * FROM payment WHERE rental_id = 99999", clone)

    # Production unchanged: its personal values are what they were (plus the writer's rows)
    after = personal_values(shop)
    assert all(before[key] <= after[key] for key in before)

    # No production email, name or phone in any ruled (or foreign-key-joined) column of the clone
    masked = personal_values(shop, clone)
    for key, values in masked.items():
        assert not values & after[key], f"{key} kept production values"
        assert values, key

    # Every foreign key joins, unique columns are unique, the same customer is the same fake everywhere
    assert set(orphans(shop, clone).values()) == {0}, orphans(shop, clone)
    assert shop.query("SELECT count(*) = count(DISTINCT email) FROM customer", clone)[0][0]
    assert shop.query("SELECT count(*) FROM rental r JOIN customer c USING (customer_id) "
                      "WHERE r.customer_email <> c.email", clone)[0][0] == 0
    assert shop.query("SELECT count(*) FROM payment p JOIN rental r USING (rental_id) "
                      "WHERE p.customer_email <> r.customer_email", clone)[0][0] == 0
    cards = [row[0] for row in shop.query("SELECT card FROM payment", clone)]
    assert all(len(card) == 16 and _luhn_ok(card) for card in cards)
    assert shop.query("SELECT count(*) FROM address WHERE phone !~ '^[+][0-9]{2} [0-9]{2} [0-9]{4} [0-9]{4}$'",
                      clone)[0][0] == 0  # the phones' shape is kept

    # A second environment gets other fakes for the same customers
    shop.publish("env.requested", env="perf-two", production="shop")
    other = env_database("perf-two", "rentals")
    assert shop.app.registry.living("perf-two").state == READY
    pairs = shop.query("SELECT customer_id, email FROM customer", clone)
    theirs = dict(shop.query("SELECT customer_id, email FROM customer", other))
    assert all(theirs[customer] != email for customer, email in pairs)

    # Deleting the environment drops its database
    shop.publish("env.expired", env="perf-two", reason="ttl")
    assert other not in databases(shop.server)


def _luhn_ok(number: str) -> bool:
    total = sum(d if i % 2 == 0 else (d * 2 // 10 + d * 2 % 10) for i, d in enumerate(map(int, reversed(number))))
    return total % 10 == 0


def test_a_rule_that_would_break_a_unique_key_fails_the_chain_naming_it_and_leaves_no_database(pg_shop):
    rules = [r for r in rental_shop.RULES if (r["table"], r["column"]) != ("staff", "email")]
    shop = pg_shop(rules + [{"table": "staff", "column": "email", "method": "fixed", "value": "x@example.com"}])

    shop.publish("env.requested", env="broken", production="shop")

    env = shop.app.registry.latest("broken")
    assert env.state == FAILED
    assert "staff.email" in env.reason and "fixed" in env.reason
    assert not shop.left_behind()


def test_a_personal_column_without_a_rule_fails_the_chain_naming_it_and_leaves_no_database(pg_shop):
    shop = pg_shop([r for r in rental_shop.RULES if (r["table"], r["column"]) != ("address", "phone")])

    shop.publish("env.requested", env="leaky", production="shop")

    env = shop.app.registry.latest("leaky")
    assert env.state == FAILED
    assert "address.phone (phone)" in env.reason and "no anonymise rule" in env.reason
    assert not shop.left_behind()
