"""A MariaDB copy loaded by several `mariadb` clients from one dump (clouds/databases/maria_loaders.py), on a real
server: every table, view, routine and trigger arrives and works."""
from __future__ import annotations

import uuid

import pytest

from clouds.databases import maria_loaders, mariadb
from tests.integration.databases.conftest import query

pytestmark = pytest.mark.mariadb

TABLES = {"customer": 3000, "orders": 9000, "item": 500, "event": 12000, "note": 40}
SCHEMA = [
    "CREATE TABLE customer (id int PRIMARY KEY, name varchar(60) NOT NULL)",
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (id), total int)",
    "CREATE TABLE item (id int PRIMARY KEY, label varchar(40))",
    "CREATE TABLE event (id int PRIMARY KEY, order_id int NOT NULL, payload text)",
    "CREATE TABLE note (id int AUTO_INCREMENT PRIMARY KEY, order_id int, text varchar(60))",
    "CREATE FUNCTION doubled(x int) RETURNS int DETERMINISTIC RETURN 2 * x",
    "CREATE VIEW customer_totals AS SELECT c.id, c.name, SUM(o.total) AS spent, doubled(COUNT(*)) AS twice "
    "FROM customer c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name",
    "CREATE VIEW big_spenders AS SELECT id, spent FROM customer_totals WHERE spent > 1000",
    "CREATE TRIGGER order_noted AFTER INSERT ON orders FOR EACH ROW "
    "INSERT INTO note (order_id, text) VALUES (NEW.id, 'new order')",
]
FILL = {
    "customer": "INSERT INTO customer SELECT seq, CONCAT('Customer ', seq) FROM seq_1_to_{n}",
    "orders": "INSERT INTO orders SELECT seq, 1 + seq % 3000, seq % 977 FROM seq_1_to_{n}",
    "item": "INSERT INTO item SELECT seq, CONCAT('item ', seq) FROM seq_1_to_{n}",
    "event": "INSERT INTO event SELECT seq, 1 + seq % 9000, REPEAT(MD5(seq), 4) FROM seq_1_to_{n}",
}


@pytest.fixture
def production(maria_server):
    """Five tables (orders' trigger writes notes), a function, a view using it and a view on that view."""
    database = f"shop_{uuid.uuid4().hex[:10]}"
    mariadb.create(maria_server, database)
    with mariadb.connect(maria_server, database, autocommit=True) as conn, conn.cursor() as cursor:
        for statement in SCHEMA:
            cursor.execute(statement)
        for table, statement in FILL.items():
            cursor.execute(statement.format(n=TABLES[table]))
    yield database
    mariadb.drop(maria_server, database)


class CountingLoader(maria_loaders._Loader):
    made: list[CountingLoader] = []

    def __init__(self, *args):
        super().__init__(*args)
        CountingLoader.made.append(self)


def test_a_copy_loaded_by_two_clients_has_every_row_and_working_views_routine_and_trigger(
        maria_server, production, monkeypatch):
    copy = f"doppel_test_parallel_{uuid.uuid4().hex[:10]}"
    monkeypatch.setattr(maria_loaders, "_Loader", CountingLoader)
    CountingLoader.made = []
    try:
        mariadb.copy(maria_server, production, maria_server, copy, loaders=2)

        assert mariadb.counts(maria_server, copy, TABLES) == mariadb.counts(maria_server, production, TABLES)
        assert mariadb.counts(maria_server, copy, TABLES)["note"] == 9000  # the trigger's rows, copied not refired
        assert len(CountingLoader.made) == 2  # and both loaded tables, not just the header:
        assert all(loader.sent > 100_000 for loader in CountingLoader.made), [l.sent for l in CountingLoader.made]
        for view in ("customer_totals", "big_spenders"):
            assert query(maria_server, copy, f"SELECT * FROM {view} ORDER BY id") == \
                query(maria_server, production, f"SELECT * FROM {view} ORDER BY id")
        assert query(maria_server, copy, "SELECT doubled(21)") == [(42,)]
        query(maria_server, copy, "INSERT INTO orders VALUES (99999, 1, 5)")
        assert query(maria_server, copy, "SELECT text FROM note WHERE order_id = 99999") == [("new order",)]
    finally:
        mariadb.drop(maria_server, copy)


def test_a_table_created_by_one_loader_with_a_foreign_key_to_a_table_another_is_filling_breaks_nothing(maria_server):
    # Given a large parent (dumped second: its rows take many INSERTs) and a child with a foreign key to it, which
    # the other loader creates while the parent is still being filled
    source, copy = f"shop_{uuid.uuid4().hex[:10]}", f"doppel_test_parallel_{uuid.uuid4().hex[:10]}"
    mariadb.create(maria_server, source)
    try:
        for statement in ("CREATE TABLE a_small (id int PRIMARY KEY)", "INSERT INTO a_small VALUES (1)",
                          "CREATE TABLE b_parent (id int PRIMARY KEY, payload text)",
                          "INSERT INTO b_parent SELECT seq, REPEAT(MD5(seq), 4) FROM seq_1_to_100000",
                          "CREATE TABLE c_child (id int PRIMARY KEY, parent_id int REFERENCES b_parent (id))",
                          "INSERT INTO c_child VALUES (1, 1)"):
            query(maria_server, source, statement)

        # When it is copied by two loaders (with LOCK TABLES in the dump, the parent's next INSERT failed: 1100)
        mariadb.copy(maria_server, source, maria_server, copy, loaders=2)

        # Then every row is there
        tables = ["a_small", "b_parent", "c_child"]
        assert mariadb.counts(maria_server, copy, tables) == {"a_small": 1, "b_parent": 100_000, "c_child": 1}
    finally:
        mariadb.drop(maria_server, copy)
        mariadb.drop(maria_server, source)
