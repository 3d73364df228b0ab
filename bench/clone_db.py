"""Cloning a server database: Doppel's snapshot + clone against the engines' own dump and restore, same run (issue 11).

    python bench/clone_db.py [--size-mb 1024] [--rounds 3] [--engines postgresql,mariadb] [--keep-productions]

Each engine gets a production of about --size-mb on its test server
(tests/services/postgresql.sh, mariadb.sh): customers (a unique email), their
orders (a foreign key, an index) and an event log of ~200-byte payloads (60% of
the size, a sequence behind its key). Each round, alternating who goes first,
times into a fresh database:
- Doppel: what a clone costs on the local driver, through the component kind's
  own entry points (clouds/local/server_databases.py): `capture_database` (the
  snapshot: clouds/databases/<engine>.clone, one point in time) and `build` of the
  environment that snapshot was taken for (a rename, no second copy).
- PostgreSQL's baseline: `pg_dump -Fd -j2` into a directory, then `pg_restore -j2`
  of it into a new database (CREATE DATABASE included; the dump's default
  compression, as an operator would run it).
- MariaDB's baseline: `mariadb-dump --single-transaction | mariadb` into a new
  database.
After each, the rows of every table are counted and compared with production's.
Prints per-round times and the ratio Doppel / baseline (the aim: <= 1.0).

The MariaDB half needs the local driver's mariadb kind; on a commit without it the
bench says so and skips that half (building no MariaDB production). The
productions are dropped at the end unless --keep-productions, and a kept one of
the same size is reused; every other database the run made is dropped at the end,
on an error and on Ctrl-C.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymysql  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.db_servers import MadeDatabases, component, header, load, mariadb_server, pg_server  # noqa: E402
from clouds.databases import postgresql  # noqa: E402
from clouds.databases.servers import Server, env_database, snapshot_database  # noqa: E402
from clouds.local.components import kind_of  # noqa: E402

BUILD_VERSION = "doppel-bench-clone-db v1"
# Share of the size and bytes per row (heap and indexes), measured on a 30 MB build; the run prints the real size.
SHARES = {"customer": (0.15, 200), "orders": (0.25, 110), "event": (0.60, 272)}

PG_SCHEMA = """
CREATE TABLE customer (id int PRIMARY KEY, email varchar(120) NOT NULL UNIQUE, name varchar(60) NOT NULL,
  created timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (id),
  amount numeric(10,2) NOT NULL, placed timestamptz NOT NULL, status varchar(12) NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE event (id bigserial PRIMARY KEY, order_id bigint NOT NULL, at timestamptz NOT NULL, payload text NOT NULL);
"""
PG_FILL = """
INSERT INTO customer SELECT i, 'customer' || i || '@mail.example.org', 'Customer ' || i,
                            timestamptz '2019-01-01' + i * interval '17 seconds'
  FROM generate_series(1, {customer}) AS i;
INSERT INTO orders SELECT i, 1 + (i::bigint * 7919) % {customer}, (i % 100000) / 100.0,
                          timestamptz '2020-01-01' + i * interval '5 seconds', (ARRAY['new','paid','sent'])[1 + i % 3]
  FROM generate_series(1, {orders}) AS i;
INSERT INTO event (order_id, at, payload)
  SELECT 1 + (i::bigint * 104729) % {orders}, timestamptz '2021-01-01' + i * interval '1 second',
         '{{"order": ' || i || ', "note": "' || repeat(md5(i::text), 5) || '"}}'
  FROM generate_series(1, {event}) AS i;
"""
MARIADB_SCHEMA = [
    "CREATE TABLE customer (id int PRIMARY KEY, email varchar(120) NOT NULL UNIQUE, name varchar(60) NOT NULL, "
    "created datetime NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount decimal(10,2) NOT NULL, "
    "placed datetime NOT NULL, status varchar(12) NOT NULL, KEY orders_customer (customer_id), "
    "FOREIGN KEY (customer_id) REFERENCES customer (id)) ENGINE=InnoDB",
    "CREATE TABLE event (id bigint AUTO_INCREMENT PRIMARY KEY, order_id bigint NOT NULL, at datetime NOT NULL, "
    "payload text NOT NULL) ENGINE=InnoDB",
]
MARIADB_FILL = {  # one chunk of rows {first}..{last} (the Sequence engine's seq_<first>_to_<last>)
    "customer": "INSERT INTO customer SELECT seq, CONCAT('customer', seq, '@mail.example.org'), "
                "CONCAT('Customer ', seq), '2019-01-01' + INTERVAL seq * 17 SECOND FROM seq_{first}_to_{last}",
    "orders": "INSERT INTO orders SELECT seq, 1 + (seq * 7919) % {customer}, (seq % 100000) / 100.0, "
              "'2020-01-01' + INTERVAL seq * 5 SECOND, ELT(1 + seq % 3, 'new', 'paid', 'sent') "
              "FROM seq_{first}_to_{last}",
    "event": "INSERT INTO event (order_id, at, payload) SELECT 1 + (seq * 104729) % {orders}, "
             "'2021-01-01' + INTERVAL seq SECOND, CONCAT('{{\"order\": ', seq, ', \"note\": \"', REPEAT(MD5(seq), 5), "
             "'\"}}') FROM seq_{first}_to_{last}",
}
CHUNK = 200_000


def rows_for(size_mb: int) -> dict[str, int]:
    return {table: max(10, int(size_mb * (1 << 20) * share / per_row)) for table, (share, per_row) in SHARES.items()}


# --- PostgreSQL -------------------------------------------------------------------------

class PostgresqlSide:
    engine = "PostgreSQL"

    def __init__(self, server: Server, size_mb: int, work: Path):
        self.server, self.size_mb, self.work = server, size_mb, work
        self.production = f"doppel_bench_clone_db_pg_{size_mb}mb"

    def drop(self, database: str) -> bool:
        return postgresql.drop(self.server, database)

    def build(self, made: MadeDatabases, keep: bool) -> None:
        with postgresql.connect(self.server, "postgres", autocommit=True) as conn:
            found = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                                 (self.production,)).fetchone()
        if found and found[0] == BUILD_VERSION:
            print(f"{self.engine} production: reusing {self.production}, kept by an earlier run (and left "
                      "in place: drop it by hand when done)")
            return
        if not keep:
            made.add(self.production, self.drop)
        self.drop(self.production)  # a half-built one from a run that died
        started = time.perf_counter()
        postgresql.create(self.server, self.production)
        with postgresql.connect(self.server, self.production) as conn:
            conn.execute(PG_SCHEMA)
            conn.execute(PG_FILL.format(**rows_for(self.size_mb)))
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE customer, orders, event")  # not the catalogues: not their owner
        with postgresql.connect(self.server, "postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(self.production),
                                                                        sql.Literal(BUILD_VERSION)))
        print(f"{self.engine} production: built {self.production} in {time.perf_counter() - started:.1f} s"
              f"{' (kept afterwards: --keep-productions)' if keep else ''}")

    def size(self, database: str) -> int:
        return postgresql.size(self.server, database)

    def counts(self, database: str) -> dict[str, int | None]:
        return postgresql.counts(self.server, database, [f"public.{table}" for table in SHARES])

    def baseline_name(self) -> str:
        return "pg_dump -Fd -j2 | pg_restore -j2"

    def baseline(self, target: str) -> float:
        """pg_dump into a directory with two jobs, a new database, pg_restore of the directory with two jobs."""
        dump = self.work / f"dump-{uuid.uuid4().hex[:8]}"
        connection = ["--host", self.server.host, "--port", str(self.server.port), "--username", self.server.user,
                      "--no-password"]
        started = time.perf_counter()
        run(["pg_dump", *connection, "--format=directory", "--jobs=2", "--file", str(dump), self.production],
            self.server)
        postgresql.create(self.server, target)
        run(["pg_restore", *connection, "--jobs=2", "--no-owner", "--no-acl", "--exit-on-error", "--dbname", target,
             str(dump)], self.server)
        elapsed = time.perf_counter() - started
        shutil.rmtree(dump)
        return elapsed


# --- MariaDB ----------------------------------------------------------------------------

class MariadbSide:
    engine = "MariaDB"

    def __init__(self, server: Server, size_mb: int, work: Path):
        self.server, self.size_mb, self.work = server, size_mb, work
        self.production = f"doppel_bench_clone_db_maria_{size_mb}mb"

    def connect(self, database: str | None = None):
        return pymysql.connect(host=self.server.host, port=self.server.port, user=self.server.user,
                               password=self.server.password() or "", database=database, autocommit=True,
                               connect_timeout=10)

    def drop(self, database: str) -> bool:
        with self.connect() as conn, conn.cursor() as cursor:
            if not cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (database,)):
                return False
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            return True

    def build(self, made: MadeDatabases, keep: bool) -> None:
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = "
                           "'bench_built' ", (self.production,))
            if cursor.fetchone():
                cursor.execute(f"SELECT version FROM `{self.production}`.bench_built")
                if (cursor.fetchone() or ("",))[0] == BUILD_VERSION:
                    print(f"{self.engine} production: reusing {self.production}, kept by an earlier run (and left "
                      "in place: drop it by hand when done)")
                    return
        if not keep:
            made.add(self.production, self.drop)
        self.drop(self.production)
        started = time.perf_counter()
        rows = rows_for(self.size_mb)
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.production}`")
            cursor.execute(f"USE `{self.production}`")
            for statement in MARIADB_SCHEMA:
                cursor.execute(statement)
            for table, statement in MARIADB_FILL.items():
                for first in range(1, rows[table] + 1, CHUNK):
                    cursor.execute(statement.format(first=first, last=min(rows[table], first + CHUNK - 1), **rows))
            cursor.execute("ANALYZE TABLE customer, orders, event")
            cursor.fetchall()
            cursor.execute("CREATE TABLE bench_built (version varchar(60)) ENGINE=InnoDB")
            cursor.execute("INSERT INTO bench_built VALUES (%s)", (BUILD_VERSION,))
        print(f"{self.engine} production: built {self.production} in {time.perf_counter() - started:.1f} s"
              f"{' (kept afterwards: --keep-productions)' if keep else ''}")

    def size(self, database: str) -> int:
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT sum(data_length + index_length) FROM information_schema.tables "
                           "WHERE table_schema = %s", (database,))
            return int(cursor.fetchone()[0] or 0)

    def counts(self, database: str) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        with self.connect() as conn, conn.cursor() as cursor:
            for table in [*SHARES, "bench_built"]:
                cursor.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                               (database, table))
                if cursor.fetchone() is None:
                    found[table] = None
                    continue
                cursor.execute(f"SELECT count(*) FROM `{database}`.`{table}`")
                found[table] = cursor.fetchone()[0]
        return found

    def baseline_name(self) -> str:
        return "mariadb-dump --single-transaction | mariadb"

    def baseline(self, target: str) -> float:
        connection = ["--host", self.server.host, "--port", str(self.server.port), "--user", self.server.user]
        env = self.server.tool_env()
        started = time.perf_counter()
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{target}`")
        with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as load_err:
            dump = subprocess.Popen(["mariadb-dump", *connection, "--single-transaction", self.production],
                                    stdout=subprocess.PIPE, stderr=dump_err, env=env)
            loaded = subprocess.run(["mariadb", *connection, target], stdin=dump.stdout, stderr=load_err, env=env)
            dump.stdout.close()
            dump.wait()
            elapsed = time.perf_counter() - started
            for proc, err, name in ((dump, dump_err, "mariadb-dump"), (loaded, load_err, "mariadb")):
                if proc.returncode != 0:
                    err.seek(0)
                    message = err.read().decode(errors="replace")[-2000:]
                    raise SystemExit(f"{name} failed ({proc.returncode}): {message}")
        return elapsed


def run(command: list[str], server: Server) -> None:
    done = subprocess.run(command, capture_output=True, env=server.tool_env())
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")


# --- the rounds --------------------------------------------------------------------------

def time_doppel(side, kind, production: dict, round_no: int, made: MadeDatabases) -> tuple[float, str]:
    """Snapshot then the environment's build, as the local driver's clone does; (seconds, the env's database)."""
    snapshot_id, env = f"bench-clone-db/{uuid.uuid4().hex[:12]}", f"bench-clone-db-{round_no}"
    for database in (snapshot_database(snapshot_id, production["name"]), env_database(env, production["name"])):
        made.add(database, side.drop)
        side.drop(database)
    started = time.perf_counter()
    kind.capture_database(production, snapshot_id)
    kind.build(production, snapshot_id, env, take_over=True)
    return time.perf_counter() - started, env_database(env, production["name"])


def check_rows(side, database: str, expected: dict, who: str) -> None:
    found = side.counts(database)
    if found != expected:
        wrong = ", ".join(f"{table}: {found.get(table)} (production {count})" for table, count in expected.items()
                          if found.get(table) != count)
        raise SystemExit(f"{side.engine}: {who}'s copy {database} does not hold production's rows: {wrong}")


def bench_engine(side, kind, rounds: int, made: MadeDatabases, keep: bool) -> None:
    side.build(made, keep)
    production = component(side.server, "shop", side.production)
    expected = side.counts(side.production)
    print(f"{side.engine} production {side.production}: {side.size(side.production) / (1 << 20):.0f} MB, "
          + ", ".join(f"{table} {count:,}" for table, count in expected.items()) + " rows")
    doppel_times, baseline_times, ratios = [], [], []
    for n in range(1, rounds + 1):
        times = {}
        for who in (("baseline", "doppel") if n % 2 else ("doppel", "baseline")):
            if who == "doppel":
                times[who], database = time_doppel(side, kind, production, n, made)
            else:
                database = made.add(f"doppel_bench_clone_db_baseline_{n}", side.drop)
                side.drop(database)
                times[who] = side.baseline(database)
            check_rows(side, database, expected, "Doppel" if who == "doppel" else side.baseline_name())
            made.drop(database)
        doppel_times.append(times["doppel"])
        baseline_times.append(times["baseline"])
        ratios.append(times["doppel"] / times["baseline"])
        print(f"{side.engine} round {n}: Doppel snapshot+clone {times['doppel']:.2f} s, {side.baseline_name()} "
              f"{times['baseline']:.2f} s; Doppel / baseline {ratios[-1]:.2f}; rows match; {load()}")
    doppel, baseline = statistics.median(doppel_times), statistics.median(baseline_times)
    print(f"{side.engine} medians: Doppel {doppel:.2f} s, {side.baseline_name()} {baseline:.2f} s; Doppel / baseline "
          f"{doppel / baseline:.2f} (ratio of medians), {statistics.median(ratios):.2f} (median of rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); aim <= 1.0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024,
                        help="size of each production database in MB (default 1024; 30 for a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing Doppel and the baseline once "
                                                              "per engine (default 3)")
    parser.add_argument("--engines", default="postgresql,mariadb", help="which halves to run (default both)")
    parser.add_argument("--keep-productions", action="store_true",
                        help="leave the production databases for the next run of the same --size-mb")
    parser.add_argument("--dir", help="where pg_dump writes its directory (default: a temporary one)")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - {"postgresql", "mariadb"}
    if unknown:
        parser.error(f"--engines: {', '.join(sorted(unknown))} is not postgresql or mariadb")
    print(header())
    with MadeDatabases() as made, tempfile.TemporaryDirectory(prefix="doppel-bench-clone-db-", dir=args.dir) as tmp:
        for engine in engines:
            side = (PostgresqlSide(pg_server(), args.size_mb, Path(tmp)) if engine == "postgresql"
                    else MariadbSide(mariadb_server(), args.size_mb, Path(tmp)))
            try:
                kind = kind_of(component(side.server, "shop", side.production))
            except LookupError as exc:
                print(f"{side.engine} copies not available on this commit ({exc}); the {side.engine} half is "
                      "skipped (it runs once the local driver registers the kind)")
                continue
            bench_engine(side, kind, args.rounds, made, args.keep_productions)
    print(f"end: {load()}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the databases this run made were dropped)")
