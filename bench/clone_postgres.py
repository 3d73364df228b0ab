"""A PostgreSQL production of a given size cloned by the chain as a server instance of its own (thin, on XFS),
against `pg_dump -Fd -j2` + `pg_restore -j2` of the same database, in the same run.

    python bench/clone_postgres.py [--size-gb 10] [--dir /var/tmp] [--rounds 2] [--jobs 2] [--compress 0]

The bench makes an XFS of its own on a sparse loop file under --dir (tests/support/loopfs.py:
root and xfsprogs), makes a PostgreSQL cluster of its own there (tests/support/pg_cluster.py,
never the shared server) and fills a database: the rental shop's tables (personal columns,
anonymised by the clone) and --size-gb of wide logged rows, written by two sessions at once
from generate_series (the cluster loads with wal_level=minimal, each table made in the
loading transaction so its rows skip the WAL, then restarts with wal_level=replica, the
default, before anything is timed; the tables are ordinary logged tables).

Timed, alternating who goes first:
- Doppel: `env.requested` through the whole chain on the embedded bus (a backup-mode
  reflink copy of the data directory, the instance started on its own port and
  recovered, anonymised, opened to the env's role) until the env's server answers a
  query over TCP with the env's fresh password; then the env expires (timed apart: the
  chain backs the env's database up first, a pg_dump of it, then stops and removes it).
- Baseline: `pg_dump -Fd -j2 --compress=0` (uncompressed: its fastest) into a directory
  on the same XFS, `createdb`, `pg_restore -j2`, until the restored database answers
  the same query; then it is dropped.
Prints each time and the ratio baseline / Doppel. The loop file needs about three times
--size-gb (production, the dump, the restored copy); it is deleted at the end.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

import functions  # noqa: E402
from clouds.databases import postgresql  # noqa: E402
from clouds.local.sample import make_sample_production  # noqa: E402
from core.broker import event_message  # noqa: E402
from doppel.app import App  # noqa: E402
from doppel.cli.common import build_event  # noqa: E402
from doppel.config import parse_config  # noqa: E402
from tests.integration.databases import rental_shop  # noqa: E402
from tests.support.loopfs import LoopUnavailable, loop_filesystem  # noqa: E402
from tests.support.pg_cluster import pg_cluster  # noqa: E402

GIB = 1 << 30
PASSWORD_ENV = "DOPPEL_BENCH_PG_PASSWORD"
ROW = 1000  # bytes of payload per row: 31 md5s, stored inline (under the TOAST threshold)
QUERY = "SELECT count(*) FROM customer"


def as_postgres(*command: str) -> None:
    subprocess.run(command, user="postgres", group="postgres", extra_groups=[], cwd="/", check=True,
                   capture_output=True)


def fill(server, database: str, gib: float, sessions: int = 2) -> None:
    """The rental shop, and `gib` of wide rows in `sessions` tables filled side by side."""
    postgresql.create(server, database)
    with postgresql.connect(server, database) as conn:
        conn.execute(rental_shop.SCHEMA)
        rental_shop.fill(conn.cursor().execute)
    rows = int(gib * GIB / (ROW + 60) / sessions)
    loaders = []
    for n in range(sessions):
        statement = (f"BEGIN; CREATE TABLE events_{n} (id bigint PRIMARY KEY, kind int NOT NULL, payload text NOT "
                     f"NULL); INSERT INTO events_{n} SELECT g, g % 17, repeat(md5(g::text), {ROW // 32}) FROM "
                     f"generate_series(1, {rows}) g; COMMIT;")
        loaders.append(subprocess.Popen(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user,
             "-d", database, "-c", statement], env=server.tool_env(), stdout=subprocess.DEVNULL))
    for loader in loaders:
        if loader.wait():
            raise SystemExit("loading the events tables failed")


def chain_clone(app, env: str, database: str, expire: bool = True) -> tuple[float, float]:
    """env.requested until the env's own server answers QUERY; then its deletion. (seconds, seconds)"""
    started = time.perf_counter()
    app.broker.publish([event_message(build_event("env.requested", {"env": env, "production": "shop"},
                                                  source="bench"))])
    app.broker.run_until_idle(timeout=3600)
    living = app.registry.living(env)
    if living is None or living.state != "ready":
        raise SystemExit(f"the clone failed: {living.reason if living else 'no env'}")
    endpoints = living.endpoints
    password = Path(endpoints["db_rentals_password_file"]).read_text()
    with psycopg.connect(host="127.0.0.1", port=endpoints["db_rentals_port"], user=endpoints["db_rentals_user"],
                         password=password, dbname=database) as conn:
        conn.execute(QUERY).fetchone()
    cloned = time.perf_counter() - started
    print(f"  {env}: cloned, its server answering, in {cloned:.2f} s", flush=True)
    if not expire:
        return cloned, 0.0
    started = time.perf_counter()
    app.broker.publish([event_message(build_event("env.expired", {"env": env, "reason": "manual"}, source="bench"))])
    app.broker.run_until_idle(timeout=3600)
    return cloned, time.perf_counter() - started


def dump_restore(server, database: str, dump_dir: Path, target: str, jobs: int, compress: int) -> float:
    started = time.perf_counter()
    common = ["-h", "127.0.0.1", "-p", str(server.port), "-U", server.user, "--no-password"]
    subprocess.run(["pg_dump", *common, "-Fd", f"-j{jobs}", f"--compress={compress}", "-f", str(dump_dir),
                    database], check=True, env=server.tool_env())
    postgresql.create(server, target)
    subprocess.run(["pg_restore", *common, f"-j{jobs}", "--no-owner", "-d", target, str(dump_dir)], check=True,
                   env=server.tool_env())
    with postgresql.connect(server, target) as conn:
        conn.execute(QUERY).fetchone()
    elapsed = time.perf_counter() - started
    shutil.rmtree(dump_dir)
    postgresql.drop(server, target)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=10.0)
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compress", type=int, default=0, help="pg_dump's --compress (0: none, its fastest)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="Doppel's clones only, each env kept until the end and then deleted without its backup")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.pop("DOPPEL_DB_URL", None)
    os.environ.pop("DOPPEL_AMQP_URL", None)
    image = int((3.2 * args.size_gb + 4) * GIB)
    with loop_filesystem("xfs", image, under=args.dir) as mount:
        os.chmod(mount.parent, 0o755)
        with pg_cluster(mount, settings="wal_level = minimal\nmax_wal_senders = 0\n") as cluster:
            server = cluster.server(PASSWORD_ENV)
            database = "shop"
            started = time.perf_counter()
            fill(server, database, args.size_gb)
            with postgresql.connect(server, database, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET wal_level = replica")
                conn.execute("ALTER SYSTEM SET max_wal_senders = 10")
                conn.execute("CHECKPOINT")
            as_postgres(str(cluster.bin_dir / "pg_ctl"), "restart", "-D", str(cluster.data), "-m", "fast", "-w",
                        "-l", str(cluster.data / "server.log"))
            size = postgresql.size(server, database)
            print(f"production: {size / GIB:.2f} GiB in database {database} (loaded in "
                  f"{time.perf_counter() - started:.0f} s), cluster at {cluster.data} on XFS")
            entry = make_sample_production(mount / "production")
            entry["components"].append({"kind": "postgresql", "name": "rentals", "host": "127.0.0.1",
                                        "port": cluster.port, "database": database, "user": "doppel",
                                        "password_env": PASSWORD_ENV, "data_directory": str(cluster.data)})
            entry["clone"]["anonymise"] += [{"database": "rentals", **rule} for rule in rental_shop.RULES]
            app = App(parse_config({"state_dir": str(mount / "state"), "productions": {"shop": entry}}, None),
                      role="bench", fast_forward=True)
            app.worker(functions.FUNCTIONS).start()
            doppel, teardown, baseline = [], [], []
            try:
                for n in range(args.rounds):
                    order = ("doppel", "baseline") if n % 2 == 0 else ("baseline", "doppel")
                    order = ("doppel",) if args.no_baseline else order
                    for who in order:
                        if who == "doppel":
                            cloned, deleted = chain_clone(app, f"bench-{n}", database, not args.no_baseline)
                            doppel.append(cloned)
                            teardown.append(deleted)
                        else:
                            baseline.append(dump_restore(server, database, mount / f"dump-{n}", f"restored_{n}",
                                                         args.jobs, args.compress))
                        print(f"round {n + 1} {who}: {(doppel if who == 'doppel' else baseline)[-1]:.2f} s",
                              flush=True)
            finally:
                if args.no_baseline:
                    for n in range(len(doppel)):
                        app.cloud.delete_stack(f"bench-{n}")
                app.close()
    if args.no_baseline:
        print(f"\n{size / GIB:.2f} GiB PostgreSQL production, load {os.getloadavg()[0]:.2f}: doppel chain clone "
              f"until the env answers: median {statistics.median(doppel):.2f} s  {[round(x, 2) for x in doppel]}")
        return
    d, b = statistics.median(doppel), statistics.median(baseline)
    print(f"\n{size / GIB:.2f} GiB PostgreSQL production, {args.rounds} rounds, load {os.getloadavg()[0]:.2f}")
    print(f"  doppel chain clone until the env answers: median {d:.2f} s  {[round(x, 2) for x in doppel]}")
    print(f"  env.expired (the env's backup, then its instance stopped and removed): median "
          f"{statistics.median(teardown):.2f} s")
    print(f"  pg_dump -Fd -j{args.jobs} --compress={args.compress} + pg_restore -j{args.jobs}: median {b:.2f} s  "
          f"{[round(x, 2) for x in baseline]}")
    print(f"  ratio baseline / doppel: {b / d:.1f}x")


if __name__ == "__main__":
    try:
        main()
    except LoopUnavailable as exc:  # e.g. mkfs.xfs missing: say what to install, not a traceback
        raise SystemExit(f"{exc}") from None
