"""Anonymising a PostgreSQL clone: Doppel's in-SQL anonymisation against pganonymize, same rules, same run (issue 11).

    python bench/anonymise.py [--rows 1000000] [--rounds 3] [--keep-production]

The production: the rental shop's shape (tests/integration/databases/rental_shop.py)
on the test PostgreSQL (tests/services/postgresql.sh): customers (first and last
name, a unique email, a creation time), their addresses (street, postcode, phone)
and payments (card numbers), --rows rows in these three ruled tables together
(a third each), plus an unruled store table. It is built once per --rows and
reused when a run with --keep-production left it. The creation time is a
timestamp of random microseconds, not a date: about one distinct value per row,
the harder case for Doppel, which fakes each distinct value once. (On a date
column with few distinct days Doppel's after-check used to refuse the clone;
it is per row for date_shift since, tests/integration/databases/test_pg_anonymise.py.)

Each round makes two fresh copies of production (CREATE DATABASE ... TEMPLATE,
not timed) and times, on one each, alternating who goes first:
- Doppel: the postgresql kind's `anonymise_database` with the rental shop's rules,
  as a clone's configure step calls it (clouds/local/configure.py): the fakes are
  computed by the server, unique columns go through a collision-free map, the
  production values are sampled and looked for afterwards, the foreign keys of
  rewritten columns are validated again, and the tables are rewritten by
  VACUUM FULL so no old value stays in a dead row. All of it is timed.
- pganonymize (PyPI, `pip install pganonymize`, the `bench` extra), a child process
  timed from start to exit, given a YAML schema this bench writes with the nearest
  provider for each rule: fake.first_name / fake.last_name / fake.street_address /
  fake.phone_number / fake.credit_card_number for the name, address, phone and
  card rules, md5 + "@example.com" for the unique email (a faker email would
  collide at this size and break the unique key), fake.date_time_between for the
  date shift, `set` for the fixed postcode. It reads every ruled row into Python,
  fakes it there and writes it back through a temporary table; it neither vacuums
  nor checks.

After each side, a sample of rows (by primary key, ~2,000 per table) is compared
with production: a side that leaves more than 1% of a ruled column's values as
they were stops the bench (a bench that times a no-op is worthless). A few can
match by chance on pganonymize's side: a fake first name can be a real one.
Doppel never returns a production value as its own fake.

Prints per-round times and the ratio pganonymize / Doppel (the aim: >= 3). Every
database the run made is dropped at the end, on an error and on Ctrl-C.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.db_servers import MadeDatabases, component, header, load, pg_server  # noqa: E402
from clouds.databases import postgresql  # noqa: E402
from clouds.databases.servers import Server, env_database  # noqa: E402
from clouds.local.components import kind_of  # noqa: E402
from tests.integration.databases import rental_shop  # noqa: E402

BUILD_VERSION = "doppel-bench-anonymise v1"
TABLES = {"customer": "customer_id", "address": "address_id", "payment": "payment_id"}  # ruled table -> its key
RULES = [rule for rule in rental_shop.RULES if rule["table"] in TABLES]
PGANONYMIZE = {  # Doppel's method -> pganonymize's nearest provider (and what its field definition adds)
    "first_name": {"provider": {"name": "fake.first_name"}},
    "last_name": {"provider": {"name": "fake.last_name"}},
    "email": {"provider": {"name": "md5"}, "append": "@example.com"},
    "date_shift": {"provider": {"name": "fake.date_time_between", "kwargs": {"start_date": "-5y", "end_date": "now"}}},
    "address": {"provider": {"name": "fake.street_address"}},
    "phone": {"provider": {"name": "fake.phone_number"}},
    "digits": {"provider": {"name": "fake.credit_card_number"}},
}
KEPT_AT_MOST = 0.01

SCHEMA = """
CREATE TABLE store (store_id int PRIMARY KEY, name varchar(60) NOT NULL);
CREATE TABLE customer (customer_id int PRIMARY KEY, store_id int NOT NULL REFERENCES store (store_id),
  first_name varchar(60) NOT NULL, last_name varchar(60) NOT NULL, email varchar(120) NOT NULL UNIQUE,
  created timestamp NOT NULL);
CREATE TABLE address (address_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (customer_id),
  street varchar(200) NOT NULL, postcode varchar(20), phone varchar(40));
CREATE TABLE payment (payment_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (customer_id),
  amount numeric(8,2) NOT NULL, card varchar(25) NOT NULL);
"""
FILL = """
INSERT INTO store VALUES (1, 'High Street'), (2, 'Station Road');
INSERT INTO customer
  SELECT i, 1 + i % 2, f, l, lower(f) || '.' || lower(l) || i || '@mail.example.org',
         timestamp '2019-01-01' + random() * interval '2000 days'
    FROM (SELECT i, ({first}::text[])[1 + i % 10] AS f, ({last}::text[])[1 + (i / 10) % 10] AS l
            FROM generate_series(1, {n}) AS i) AS people;
INSERT INTO address
  SELECT i, i, i || ' ' || ({last}::text[])[1 + (i / 7) % 10] || ' Road', 'AB' || i % 9 || ' ' || i % 7 || 'CD',
         '+44 20 7946 ' || lpad((i % 10000)::text, 4, '0')
    FROM generate_series(1, {n}) AS i;
INSERT INTO payment
  SELECT i, 1 + (i::bigint * 7919) % {n}, (100 + i % 1900) / 100.0,
         '4' || lpad(((i::bigint * 104729) % 1000000000000000)::text, 15, '0')
    FROM generate_series(1, {n}) AS i;
"""


def production_name(rows: int) -> str:
    return f"doppel_bench_anonymise_{rows}"


def build_production(server: Server, rows: int, made: MadeDatabases, keep: bool) -> str:
    """The production database for `rows`: reused when a kept one is complete, else built (and dropped at the end
    unless `keep`)."""
    name = production_name(rows)
    with postgresql.connect(server, "postgres", autocommit=True) as conn:
        found = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                             (name,)).fetchone()
    if found and found[0] == BUILD_VERSION:
        print(f"production: reusing {name}, kept by an earlier run (and left in place: drop it by hand when done)")
        return name
    if not keep:
        made.add(name, lambda db: postgresql.drop(server, db))
    postgresql.drop(server, name)  # a half-built one from a run that died
    started = time.perf_counter()
    postgresql.create(server, name)
    per_table = math.ceil(rows / len(TABLES))
    with postgresql.connect(server, name) as conn:
        conn.execute(SCHEMA)
        values = {"first": rental_shop.FIRST, "last": rental_shop.LAST, "n": per_table}
        conn.execute(FILL.format(**{name: sql.Literal(value).as_string(conn) for name, value in values.items()}))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE store, customer, address, payment")  # not the catalogues: not their owner
    with postgresql.connect(server, "postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(BUILD_VERSION)))
    print(f"production: built {name} in {time.perf_counter() - started:.1f} s"
          f"{' (kept afterwards: --keep-production)' if keep else ''}")
    return name


def describe(server: Server, database: str) -> str:
    with postgresql.connect(server, database, autocommit=True) as conn:
        counts = [f"{table} {count(conn, table):,}" for table in TABLES]
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return f"{', '.join(counts)} rows; {size / (1 << 20):.0f} MB"


def count(conn, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def ruled_columns() -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {}
    for rule in RULES:
        columns.setdefault(rule["table"], []).append(rule["column"])
    return columns


def sample(server: Server, database: str, keys: dict[str, list[int]] | None = None) -> dict:
    """(table, column) -> {key: value} for a spread of rows (`keys`, or every n-th row for about 2,000 per table)."""
    values: dict[tuple[str, str], dict] = {}
    with postgresql.connect(server, database, autocommit=True) as conn:
        for table, columns in ruled_columns().items():
            key = TABLES[table]
            if keys is None:
                every = max(1, count(conn, table) // 2000)
                where = sql.SQL("WHERE {} % {} = 0").format(sql.Identifier(key), sql.Literal(every))
                params = None
            else:
                where, params = sql.SQL("WHERE {} = ANY(%s)").format(sql.Identifier(key)), (keys[table],)
            rows = conn.execute(sql.SQL("SELECT {}, {} FROM {} ").format(
                sql.Identifier(key), sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)) + where,
                params).fetchall()
            for index, column in enumerate(columns, start=1):
                values[(table, column)] = {row[0]: row[index] for row in rows}
    return values


def kept_values(server: Server, database: str, production: dict, who: str) -> tuple[int, int]:
    """How many sampled values are still production's (all columns); exits when a column kept too many."""
    keys = {table: sorted(production[(table, columns[0])]) for table, columns in ruled_columns().items()}
    after = sample(server, database, keys)
    kept = total = 0
    for (table, column), before in production.items():
        same = sum(1 for key, value in before.items() if value is not None and after[(table, column)].get(key) == value)
        if not after[(table, column)] or same > KEPT_AT_MOST * len(before):
            raise SystemExit(f"{who} left {same} of {len(before)} sampled values of {table}.{column} as they were in "
                             f"production: it did not anonymise, and the bench would time a no-op")
        kept, total = kept + same, total + len(before)
    return kept, total


def pganonymize_schema(path: Path) -> Path:
    """pganonymize's YAML schema for RULES: one entry per ruled table, the nearest provider per column."""
    tables = []
    for table, key in TABLES.items():
        fields = []
        for rule in (r for r in RULES if r["table"] == table):
            definition = ({"provider": {"name": "set", "value": rule["value"]}} if rule["method"] == "fixed"
                          else PGANONYMIZE[rule["method"]])
            fields.append({rule["column"]: definition})
        tables.append({table: {"primary_key": key, "chunk_size": 100_000, "fields": fields}})
    path.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False))
    return path


def password_file(server: Server, work: Path) -> Path:
    """A libpq password file: pganonymize takes its password on the command line (where `ps` shows it) unless
    libpq finds it there."""
    escaped = (server.password() or "").replace("\\", "\\\\").replace(":", "\\:")
    path = work / "pgpass"
    path.touch(mode=0o600)
    path.write_text(f"{server.host}:{server.port}:*:{server.user}:{escaped}\n")
    return path


def copy_of(server: Server, production: str, name: str, made: MadeDatabases) -> str:
    made.add(name, lambda db: postgresql.drop(server, db))
    postgresql.drop(server, name)
    postgresql.create(server, name, template=production)
    return name


def time_doppel(server: Server, production: str, round_no: int, made: MadeDatabases, sampled: dict) -> tuple:
    env = f"bench-anonymise-{round_no}"
    database = copy_of(server, production, env_database(env, "rentals"), made)
    # The component as doppel.yaml gives it; its env's database is the copy (the clone's configure step runs here)
    rentals = component(server, "rentals", production)
    rules = [{"database": "rentals", **rule} for rule in RULES]
    started = time.perf_counter()
    changed = kind_of(rentals).anonymise_database(rentals, env, rules, os.urandom(32))
    elapsed = time.perf_counter() - started
    kept = kept_values(server, database, sampled, "Doppel")
    made.drop(database)
    return elapsed, kept, sum(n for n in changed.values() if n > 0)


def time_pganonymize(server: Server, production: str, round_no: int, made: MadeDatabases, sampled: dict,
                     schema: Path, passfile: Path) -> tuple:
    database = copy_of(server, production, f"doppel_bench_pganonymize_{round_no}", made)
    command = [sys.executable, "-m", "pganonymize", "--schema", str(schema), "--dbname", database,
               "--user", server.user, "--host", server.host, "--port", str(server.port)]
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"} | {"PGPASSFILE": str(passfile)}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pganonymize failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    kept = kept_values(server, database, sampled, "pganonymize")
    made.drop(database)
    return elapsed, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows in the ruled tables together (default 1,000,000; 20,000 for a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing both sides once (default 3)")
    parser.add_argument("--keep-production", action="store_true",
                        help="leave the production database for the next run with the same --rows (its build is "
                             "not timed, but takes a while at 1,000,000 rows)")
    args = parser.parse_args()
    print(header())
    server = pg_server()
    with MadeDatabases() as made, tempfile.TemporaryDirectory(prefix="doppel-bench-anonymise-") as tmp:
        production = build_production(server, args.rows, made, args.keep_production)
        print(f"production {production}: {describe(server, production)}; "
              f"{len(RULES)} rules on {len(TABLES)} tables")
        sampled = sample(server, production)
        schema = pganonymize_schema(Path(tmp) / "pganonymize.yml")
        passfile = password_file(server, Path(tmp))
        doppel_times, pga_times, ratios = [], [], []
        for n in range(1, args.rounds + 1):
            results = {}
            for side in (("doppel", "pganonymize") if n % 2 else ("pganonymize", "doppel")):
                if side == "doppel":
                    results[side] = time_doppel(server, production, n, made, sampled)
                else:
                    results[side] = time_pganonymize(server, production, n, made, sampled, schema, passfile)
            (doppel, doppel_kept, rewritten), (pga, pga_kept) = results["doppel"], results["pganonymize"]
            doppel_times.append(doppel)
            pga_times.append(pga)
            ratios.append(pga / doppel)
            print(f"round {n}: Doppel {doppel:.2f} s ({rewritten:,} values rewritten), pganonymize {pga:.2f} s; "
                  f"pganonymize / Doppel {pga / doppel:.2f}x; sampled values still production's: "
                  f"Doppel {doppel_kept[0]} of {doppel_kept[1]}, pganonymize {pga_kept[0]} of {pga_kept[1]}; {load()}")
        doppel, pga = statistics.median(doppel_times), statistics.median(pga_times)
        print(f"medians: Doppel {doppel:.2f} s, pganonymize {pga:.2f} s; pganonymize / Doppel: {pga / doppel:.2f}x "
              f"(ratio of medians), {statistics.median(ratios):.2f}x (median of rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}); aim >= 3x")
    print(f"end: {load()}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the databases this run made were dropped)")
