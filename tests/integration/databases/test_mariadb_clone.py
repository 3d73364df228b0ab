"""A production with a MariaDB database, cloned by the whole chain on a real server while a writer keeps inserting:
one point in time, anonymised inside the clone with every join kept, or failed with nothing left; and a production
with a PostgreSQL and a MariaDB database cloned in one chain."""
from __future__ import annotations

import random
import threading
import uuid

import pytest

from clouds.databases import mariadb
from clouds.databases.servers import DatabaseError, env_database, snapshot_database
from clouds.local.server_databases import MARIADB
from core.registry import FAILED, READY
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import databases, query
from tests.integration.databases.test_postgresql_clone import _luhn_ok, orphans, personal_values
from tests.support.waiting import wait_for

pytestmark = pytest.mark.mariadb


class LateCommit(threading.Thread):
    """Holds rental, payment and ledger (LOCK TABLES) from before the clone starts; once the clone's reader is
    seen waiting for ledger (its snapshot taken, address and customer read), commits one more rental and lets go.
    A clone of one moment has none of that rental; one that reads table by table as it goes has it."""

    def __init__(self, shop, writer: rental_shop.Writer):
        super().__init__(name="late-commit", daemon=True)
        self.shop, self.writer, self.locked, self.done = shop, writer, threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.shop.connect() as conn, conn.cursor() as cursor:
                with self.writer.between:  # not in the middle of the writer's transaction: that would deadlock
                    cursor.execute("LOCK TABLES ledger WRITE, rental WRITE, payment WRITE, customer READ")
                self.locked.set()
                wait_for(self._reader_waits_for_ledger, 120, "the clone's reader to wait for table ledger")
                rental_shop.add_rental(cursor.execute, 99_999, random.Random(1), 60)
                conn.commit()
                cursor.execute("UNLOCK TABLES")
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            self.locked.set()
            self.done.set()

    def _reader_waits_for_ledger(self) -> bool:
        return bool(query(self.shop.server, None, "SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = %s AND "
                                                  "STATE LIKE 'Waiting for table metadata lock' AND INFO LIKE %s",
                          (self.shop.database, "%`ledger`%")))


def test_a_clone_is_one_moment_of_production_anonymised_with_every_join_kept(maria_shop):
    shop = maria_shop()
    before = personal_values(shop)
    writer = rental_shop.Writer(shop.connect, first_id=10_000)
    writer.start()
    late = LateCommit(shop, writer)
    try:
        writer.wait_for(20)
        late.start()
        late.locked.wait(30)
        shop.publish("env.requested", env="perf-test", production="shop")
        at_clone = writer.committed
        writer.wait_for(at_clone + 20)  # production kept taking writes after the clone, and still does
    finally:
        writer.stop()
        late.join(30)
    assert writer.error is None and late.error is None and late.done.is_set()
    env = shop.app.registry.living("perf-test")
    assert env.state == READY, env.reason
    clone = env.endpoints["db_rentals_database"]
    assert clone == env_database("perf-test", "rentals") and env.endpoints["db_rentals_port"] == 3306

    # One point in time: what the writer's transactions add up to agrees with the rows they wrote
    rentals, paid = shop.query("SELECT rentals, paid FROM ledger", clone)[0]
    assert shop.query("SELECT count(*), sum(amount) FROM payment", clone)[0] == (rentals, paid)
    assert shop.query("SELECT count(*) FROM rental", clone)[0][0] == rentals
    assert 120 + 20 <= rentals < shop.query("SELECT rentals FROM ledger")[0][0]  # not today's: the clone's moment
    assert shop.query("SELECT count(*) FROM rental WHERE rental_id = 99999")[0][0] == 1  # in production ...
    assert not shop.query("SELECT * FROM rental WHERE rental_id = 99999", clone)  # ... committed after the moment
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
    assert shop.query("SELECT count(*) = count(DISTINCT email) FROM staff", clone)[0][0]
    assert shop.query("SELECT count(*) FROM rental r JOIN customer c USING (customer_id) "
                      "WHERE r.customer_email <> c.email", clone)[0][0] == 0
    assert shop.query("SELECT count(*) FROM payment p JOIN rental r USING (rental_id) "
                      "WHERE p.customer_email <> r.customer_email", clone)[0][0] == 0
    cards = [row[0] for row in shop.query("SELECT card FROM payment", clone)]
    assert all(len(card) == 16 and _luhn_ok(card) for card in cards)
    assert shop.query("SELECT count(*) FROM address WHERE phone NOT REGEXP '^[+][0-9]{2} [0-9]{2} [0-9]{4} [0-9]{4}$'",
                      clone)[0][0] == 0  # the phones' shape is kept
    assert not shop.query("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                          None, (clone,))  # the fakes' functions are gone with the masking

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


def test_a_rule_that_would_break_a_unique_key_fails_the_chain_naming_it_and_leaves_no_database(maria_shop):
    rules = [r for r in rental_shop.RULES if (r["table"], r["column"]) != ("staff", "email")]
    shop = maria_shop(rules + [{"table": "staff", "column": "email", "method": "fixed", "value": "x@example.com"}])

    shop.publish("env.requested", env="broken", production="shop")

    env = shop.app.registry.latest("broken")
    assert env.state == FAILED
    assert "staff.email" in env.reason and "fixed" in env.reason
    assert "x@example.com" not in env.reason  # the server's message quotes the value (it may be a production one)
    assert not shop.left_behind("broken")


def test_a_rule_that_would_break_a_foreign_key_fails_the_chain_naming_it_and_leaves_no_database(maria_shop):
    # Emptying store leaves every customer without its store. MariaDB checks no foreign key while masking (it
    # cannot, with a parent's key and its children's changing), so the check after masking must catch it.
    shop = maria_shop(rental_shop.RULES + [{"table": "store", "method": "truncate"}])

    shop.publish("env.requested", env="orphans", production="shop")

    env = shop.app.registry.latest("orphans")
    assert env.state == FAILED
    assert "no longer joins store" in env.reason and "customer.store_id" in env.reason, env.reason
    assert not shop.left_behind("orphans")


def test_a_personal_column_without_a_rule_fails_the_chain_naming_it_and_leaves_no_database(maria_shop):
    shop = maria_shop([r for r in rental_shop.RULES if (r["table"], r["column"]) != ("address", "phone")])

    shop.publish("env.requested", env="leaky", production="shop")

    env = shop.app.registry.latest("leaky")
    assert env.state == FAILED
    assert "address.phone (phone)" in env.reason and "no anonymise rule" in env.reason
    assert not shop.left_behind("leaky")


def test_a_production_with_a_postgresql_and_a_mariadb_database_is_cloned_in_one_chain(both_shops, maria_server):
    shop = both_shops()
    maria_production = shop.others["mariadb"][1]

    shop.publish("env.requested", env="both", production="shop")

    env = shop.app.registry.living("both")
    assert env is not None and env.state == READY, shop.app.registry.latest("both").reason
    pg_clone, maria_clone = env.endpoints["db_rentals_database"], env.endpoints["db_mariadb_database"]
    assert env.endpoints["db_rentals_port"] == 5432 and env.endpoints["db_mariadb_port"] == 3306
    production_emails = {row[0] for row in query(maria_server, maria_production, "SELECT email FROM customer")}
    masked = dict(query(maria_server, maria_clone, "SELECT customer_id, email FROM customer"))
    assert masked and not production_emails & set(masked.values())
    assert query(maria_server, maria_clone, "SELECT count(*) FROM rental")[0][0] == 120
    # One key for the environment, one HMAC in both engines: the same customer is the same fake in both
    assert dict(shop.query("SELECT customer_id, email FROM customer", pg_clone)) == masked

    shop.publish("env.expired", env="both", reason="ttl")
    assert pg_clone not in databases(shop.server) and maria_clone not in databases(maria_server)


def test_triggers_do_not_see_the_masking_and_come_with_the_copy(maria_shop):
    shop = maria_shop()
    # An audit trigger, as production might have one: it records every change of a customer it sees
    shop.query("CREATE TABLE customer_change (customer_id int NOT NULL)")
    shop.query("CREATE TRIGGER customer_audit AFTER UPDATE ON customer FOR EACH ROW "
               "INSERT INTO customer_change VALUES (OLD.customer_id)")

    shop.publish("env.requested", env="audited", production="shop")

    env = shop.app.registry.living("audited")
    assert env is not None and env.state == READY, shop.app.registry.latest("audited").reason
    clone = env.endpoints["db_rentals_database"]
    assert shop.query("SELECT count(*) FROM customer_change", clone)[0][0] == 0  # the masking went unseen
    assert shop.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", None,
                      (clone,)) == [("customer_audit",)]
    shop.query("UPDATE customer SET last_name = 'Changed' WHERE customer_id = 1", clone)
    assert shop.query("SELECT customer_id FROM customer_change", clone) == [(1,)]  # and it works in the copy


def test_an_env_whose_move_of_tables_died_half_way_gets_every_table_on_the_retry(maria_shop, monkeypatch):
    shop = maria_shop()
    [component] = [c for c in shop.app.config["productions"]["shop"]["components"] if c["kind"] == "mariadb"]
    snapshot = snapshot_database("snap-moved", "rentals")
    mariadb.copy(shop.server, shop.database, shop.server, snapshot)
    # The first build dies after RENAME TABLE moved the tables, before the snapshot's database was dropped
    rows = mariadb._rows

    def dies_at_the_drop(server, statement, *args, **kwargs):
        if statement == f"DROP DATABASE `{snapshot}`":
            raise DatabaseError("the worker was killed here")
        return rows(server, statement, *args, **kwargs)

    monkeypatch.setattr(mariadb, "_rows", dies_at_the_drop)
    with pytest.raises(DatabaseError, match="killed"):
        MARIADB.build(component, "snap-moved", "moved", take_over=True)
    assert shop.query("SHOW TABLES", snapshot) == []
    monkeypatch.setattr(mariadb, "_rows", rows)

    assert MARIADB.build(component, "snap-moved", "moved", take_over=True)

    database = env_database("moved", "rentals")
    assert shop.query("SELECT count(*) FROM rental", database) == [(120,)]
    assert snapshot not in databases(shop.server)
    assert shop.query("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", None,
                      (database,)) == [("",)]


def test_a_copy_whose_dump_fails_says_so_naming_the_database_and_leaves_nothing(maria_server):
    target = f"doppel_snap_test_{uuid.uuid4().hex[:8]}"

    with pytest.raises(DatabaseError, match=r"copying MariaDB database shop_gone into doppel_snap_test_\w+: "
                                            r"mariadb-dump failed: .*Unknown database"):
        mariadb.clone(maria_server, "shop_gone", maria_server, target)

    assert target not in databases(maria_server)


def test_a_rule_that_leaves_production_values_in_place_fails_the_chain_naming_the_column(maria_shop):
    # digits replaces digits: last names have none, so they would come through as they are
    rules = [r for r in rental_shop.RULES if (r["table"], r["column"]) != ("customer", "last_name")]
    shop = maria_shop(rules + [{"table": "customer", "column": "last_name", "method": "digits"}])

    shop.publish("env.requested", env="unmasked", production="shop")

    env = shop.app.registry.latest("unmasked")
    assert env.state == FAILED
    assert "customer.last_name still holds" in env.reason and "production value" in env.reason, env.reason
    assert not shop.left_behind("unmasked")
