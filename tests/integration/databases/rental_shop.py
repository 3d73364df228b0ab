"""A rental shop's production database (PostgreSQL or MariaDB) for the database tests, and a writer that keeps
inserting into it.

customers, their addresses with phones, staff managed by staff (a self-reference on
email), rentals that point at a customer by (id, email) (a composite foreign key),
payments with card numbers; `ledger` holds what the writer's transactions add up to,
so a copy taken at one point in time agrees with it, and one taken across two
points does not.
"""
from __future__ import annotations

import random
import threading

SCHEMA = """
CREATE TABLE store (store_id int PRIMARY KEY, name varchar(60) NOT NULL);
CREATE TABLE customer (customer_id int PRIMARY KEY, store_id int NOT NULL REFERENCES store (store_id),
  first_name varchar(60) NOT NULL, last_name varchar(60) NOT NULL, email varchar(120) NOT NULL UNIQUE,
  created date NOT NULL, UNIQUE (customer_id, email));
CREATE TABLE address (address_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (customer_id),
  street varchar(200) NOT NULL, postcode varchar(20), phone varchar(40));
CREATE TABLE staff (staff_id int PRIMARY KEY, first_name varchar(60) NOT NULL, last_name varchar(60) NOT NULL,
  email varchar(120) NOT NULL UNIQUE, manager_email varchar(120) REFERENCES staff (email));
CREATE TABLE rental (rental_id int PRIMARY KEY, customer_id int NOT NULL, customer_email varchar(120) NOT NULL,
  staff_email varchar(120) NOT NULL REFERENCES staff (email), rented date NOT NULL,
  FOREIGN KEY (customer_id, customer_email) REFERENCES customer (customer_id, email));
CREATE TABLE payment (payment_id int PRIMARY KEY, rental_id int NOT NULL REFERENCES rental (rental_id),
  customer_email varchar(120) NOT NULL REFERENCES customer (email), amount numeric(8,2) NOT NULL,
  card varchar(25) NOT NULL);
CREATE TABLE ledger (id int PRIMARY KEY, rentals int NOT NULL, paid numeric(12,2) NOT NULL);
"""

RULES = [
    {"table": "customer", "column": "email", "method": "email"},
    {"table": "customer", "column": "first_name", "method": "first_name"},
    {"table": "customer", "column": "last_name", "method": "last_name"},
    {"table": "customer", "column": "created", "method": "date_shift", "days": 30},
    {"table": "address", "column": "street", "method": "address"},
    {"table": "address", "column": "postcode", "method": "fixed", "value": "ZZ1 1ZZ"},
    {"table": "address", "column": "phone", "method": "phone"},
    {"table": "staff", "column": "email", "method": "email"},
    {"table": "staff", "column": "first_name", "method": "first_name"},
    {"table": "staff", "column": "last_name", "method": "last_name"},
    {"table": "payment", "column": "card", "method": "digits", "check": "luhn"},
]
PERSONAL = [("customer", "email"), ("customer", "first_name"), ("customer", "last_name"), ("address", "street"),
            ("address", "phone"), ("staff", "email"), ("staff", "first_name"), ("staff", "last_name"),
            ("rental", "customer_email"), ("rental", "staff_email"), ("payment", "customer_email"),
            ("staff", "manager_email")]
FOREIGN_KEYS = [  # child table, child columns, parent table, parent columns
    ("customer", ("store_id",), "store", ("store_id",)),
    ("address", ("customer_id",), "customer", ("customer_id",)),
    ("staff", ("manager_email",), "staff", ("email",)),
    ("rental", ("staff_email",), "staff", ("email",)),
    ("rental", ("customer_id", "customer_email"), "customer", ("customer_id", "email")),
    ("payment", ("rental_id",), "rental", ("rental_id",)),
    ("payment", ("customer_email",), "customer", ("email",)),
]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lee"]


def luhn_card(rng: random.Random) -> str:
    digits = [rng.randrange(10) for _ in range(15)]
    total = sum(d if i % 2 else (d * 2 // 10 + d * 2 % 10) for i, d in enumerate(reversed(digits)))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def fill(execute, customers: int = 60, seed: int = 7) -> None:
    """Rows that look like a real shop's: `execute(sql, params)` runs one statement (%s placeholders)."""
    rng = random.Random(seed)
    execute("INSERT INTO store VALUES (%s, %s)", (1, "High Street"))
    for i in range(1, 6):
        first, last = FIRST[i], LAST[i]
        manager = None if i == 1 else "boss.hopper@rental-shop.co.uk"
        email = "boss.hopper@rental-shop.co.uk" if i == 1 else f"{first.lower()}.{last.lower()}@rental-shop.co.uk"
        execute("INSERT INTO staff VALUES (%s, %s, %s, %s, %s)", (i, first, last, email, manager))
    for i in range(1, customers + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        execute("INSERT INTO customer VALUES (%s, 1, %s, %s, %s, %s)",
                (i, first, last, f"{first.lower()}.{last.lower()}{i}@mail.example.org", f"2024-0{1 + i % 9}-1{i % 9}"))
        execute("INSERT INTO address VALUES (%s, %s, %s, %s, %s)",
                (i, i, f"{i} {rng.choice(LAST)} Road", f"AB{i % 9} {i % 7}CD", f"+44 20 7946 {i:04d}"))
    execute("INSERT INTO ledger VALUES (1, 0, 0)", ())
    for i in range(1, customers * 2 + 1):
        add_rental(execute, i, rng, customers)


def add_rental(execute, rental_id: int, rng: random.Random, customers: int) -> None:
    """One rental and its payment, and the ledger moved by both (the caller's transaction holds them together)."""
    customer = rng.randrange(1, customers + 1)
    execute("INSERT INTO rental SELECT %s, customer_id, email, %s, %s FROM customer WHERE customer_id = %s",
            (rental_id, "boss.hopper@rental-shop.co.uk", "2025-03-01", customer))
    amount = rng.randrange(100, 2000) / 100
    execute("INSERT INTO payment SELECT %s, %s, email, %s, %s FROM customer WHERE customer_id = %s",
            (rental_id, rental_id, amount, luhn_card(rng), customer))
    execute("UPDATE ledger SET rentals = rentals + 1, paid = paid + %s WHERE id = 1", (amount,))


class Writer(threading.Thread):
    """Keeps adding rentals to production, one transaction each, until stopped; counts what it committed."""

    def __init__(self, connect, first_id: int, customers: int = 60):
        super().__init__(name="rental-writer", daemon=True)
        self.connect, self.next_id, self.customers = connect, first_id, customers
        self.committed = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.progress = threading.Condition()
        self.between = threading.Lock()  # held for each transaction: whoever holds it has the writer between two

    def run(self) -> None:
        rng = random.Random(99)
        try:
            conn = self.connect()
            cursor = conn.cursor()
            while not self.done.is_set():
                with self.between:
                    add_rental(cursor.execute, self.next_id, rng, self.customers)
                    conn.commit()
                self.next_id += 1
                with self.progress:
                    self.committed += 1
                    self.progress.notify_all()
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, count: int) -> None:
        """Until at least `count` transactions committed (or the writer failed)."""
        with self.progress:
            self.progress.wait_for(lambda: self.committed >= count or self.error is not None, timeout=60)
        if self.error:
            raise self.error

    def stop(self) -> None:
        self.done.set()
        self.join(30)
