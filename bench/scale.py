"""Doppel at scale: `env list` and the expiry sweep over 1,000 environments, and 100 chains at once on 2 workers.

    python bench/scale.py [--envs 1000] [--rounds 5] [--db sqlite,postgresql] [--chains 100] [--workers 2]
                          [--chain-db postgresql] [--amqp URL] [--skip list,sweep,scheduler,chains]
                          [--baseline COMMIT]

- env list: `python -m doppel env list` as a whole process (interpreter, imports,
  config, schema check, query, table) over --envs ready environments, against
  the same command on an empty registry and `python -c pass`, rounds
  alternating; the median beside the aim of 1 s. Once with the validated
  doppel.yaml remembered from the warm-up run (what a user's second command
  finds) and once with that cache off. The registry is filled with the rows
  the registry writes for a ready environment and its five transitions, in a
  few INSERTs. --baseline COMMIT times that commit's `env list` in the same
  rounds (its files from `git archive`, its databases made by its own
  `doppel db upgrade`), for a before and after under the same load.
- sweep: the scheduler's expiry safety net (`Firer.sweep_expired`) over --envs
  ready environments past their TTL, publishing to the in-memory bus, against
  the read of those rows alone (`Registry.expired`); it checks that each
  environment got one env.expired.
- scheduler: a `SchedulerService` (lease, APScheduler, TTL date jobs and the
  sweep) with --envs TTLs ending in the same second: the time from that second
  to the last env.expired, and how many were published for how many
  environments (the same id twice is a duplicate the ledger would absorb).
- chains: --chains env.requested published at once to --workers `doppel worker`
  processes through RabbitMQ (a vhost of its own, deleted after), the local
  driver and a tiny sample production (20 rows), the state on --chain-db;
  beside it, the same chains on the embedded bus (one process, the `doppel
  run` thread pool) as the baseline measured in the same run. Chain time:
  from the env.requested's time to the registry's transition to ready.
  Prints p50 and p95 of each, and the wall time until the last was ready.

PostgreSQL is the test server of tests/services/postgresql.sh (a database of
its own per part, dropped after); RabbitMQ that of tests/services/rabbitmq.sh.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.db import make_engine  # noqa: E402
from core.registry import (  # noqa: E402
    CLONING,
    CONFIGURING,
    READY,
    REQUESTED,
    SNAPSHOTTING,
    Registry,
    envs_table,
    transitions_table,
)
from doppel.migrations import ensure_current  # noqa: E402

AIM_LIST_S = 1.0
CHAIN_TIMEOUT = 900.0


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


# -- state databases --------------------------------------------------------------------
@contextmanager
def state_database(kind: str, scratch: Path, label: str):
    """A fresh state database at this code's schema: a SQLite file, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        path = scratch / f"{label}-{uuid.uuid4().hex[:6]}.db"
        yield f"sqlite:///{path}"
        return
    from tests.support.state_db import start_postgresql
    server = start_postgresql()
    name = server.create()
    try:
        yield server.url(name)
    finally:
        server.drop(name)


def fill(url: str, count: int, expires_at, migrate: bool = True) -> None:
    """`count` ready environments with their five transitions, as the chain leaves them; `expires_at(n)`.
    `migrate`: bring the database to this code's schema first (else it is at another tree's already)."""
    engine = make_engine(url)
    if migrate:
        ensure_current(engine, "the bench's database")
    made = datetime.now(timezone.utc) - timedelta(hours=1)
    if count == 0:
        engine.dispose()
        return
    with engine.begin() as conn:
        first = (conn.execute(envs_table.select().order_by(envs_table.c.id.desc()).limit(1)).first() or [0])[0]
        conn.execute(envs_table.insert(), [
            {"name": f"env-{n:04d}", "request_id": f"bench/{n}", "production": "shop", "state": READY,
             "owner": "bench", "ttl_seconds": 3600, "expires_at": expires_at(n),
             "endpoints": json.dumps({"root": f"/srv/env-{n:04d}", "url": f"http://env-{n:04d}.localhost"}),
             "correlation_id": f"bench-{n}", "created_at": made, "updated_at": made} for n in range(count)])
        steps = [(None, REQUESTED), (REQUESTED, SNAPSHOTTING), (SNAPSHOTTING, CLONING), (CLONING, CONFIGURING),
                 (CONFIGURING, READY)]
        conn.execute(transitions_table.insert(), [
            {"env_id": first + n + 1, "from_state": a, "to_state": b, "event_id": f"bench/{n}/{b}", "at": made}
            for n in range(count) for a, b in steps])
    engine.dispose()


# -- env list ------------------------------------------------------------------------------
def child_env(db_url: str | None, root: Path = ROOT) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(root)  # bytecode allowed: a user's installed Doppel has its .pyc files
    if db_url:
        env["DOPPEL_DB_URL"] = db_url
    return env


def timed(argv: list[str], cwd: Path, env: dict, lines: int | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process; the CPU time is what the load on a shared machine
    changes least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if lines is not None and len(run.stdout.splitlines()) != lines:
        raise SystemExit(f"{' '.join(argv[2:])} printed {len(run.stdout.splitlines())} lines, not {lines}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def baseline_tree(commit: str, scratch: Path) -> Path:
    """Another commit's files (`git archive`), to time its `env list` in the same rounds as this code's."""
    tree = scratch / f"baseline-{commit}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def bench_list(kind: str, count: int, rounds: int, scratch: Path, baseline: Path | None = None) -> tuple[dict, dict]:
    """(wall seconds, CPU seconds) of each command, by command. With `baseline` (another commit's tree), the
    same commands of that code too, on databases its own `doppel db upgrade` made."""
    cwd = scratch / f"list-{kind}"
    cwd.mkdir()
    (cwd / "doppel.yaml").write_text("state_dir: state\n")
    doppel = [sys.executable, "-m", "doppel", "env", "list"]
    later = lambda n: datetime.now(timezone.utc) + timedelta(days=1)  # noqa: E731
    cache = {"DOPPEL_CACHE_DIR": str(scratch / "config-cache")}  # the validated doppel.yaml, kept between runs
    with ExitStack() as stack:
        full, empty = (stack.enter_context(state_database(kind, scratch, f"list-{label}"))
                       for label in ("full", "empty"))
        fill(full, count, later)
        fill(empty, 0, lambda n: None)
        cases = {"python -c pass": ([sys.executable, "-c", "pass"], child_env(None), None),
                 "env list, empty registry": (doppel, {**child_env(empty), **cache}, None),
                 f"env list, {count} environments": (doppel, {**child_env(full), **cache}, count + 1),
                 "  the same, config cache off": (doppel, {**child_env(full), "DOPPEL_CACHE_DIR": "off"}, count + 1)}
        if baseline is not None:
            old_full, old_empty = (stack.enter_context(state_database(kind, scratch, f"list-old-{label}"))
                                   for label in ("full", "empty"))
            for url in (old_full, old_empty):
                subprocess.run([sys.executable, "-m", "doppel", "db", "upgrade"], cwd=cwd,
                               env=child_env(url, baseline), capture_output=True, check=True)
            fill(old_full, count, later, migrate=False)
            cases.update({"baseline: env list, empty registry": (doppel, child_env(old_empty, baseline), None),
                          f"baseline: env list, {count} envs": (doppel, child_env(old_full, baseline), count + 1)})
        for argv, env, lines in cases.values():
            timed(argv, cwd, env, lines)  # warm: page cache, and the .pyc files written once
        times = {name: [] for name in cases}
        cpu = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (argv, env, lines) in cases.items():
                wall, used = timed(argv, cwd, env, lines)
                times[name].append(wall)
                cpu[name].append(used)
    return times, cpu


# -- the sweep -------------------------------------------------------------------------------
def memory_bus():
    from bus.memory import MemoryBroker
    from core.broker import QueueSpec
    broker = MemoryBroker()
    broker.declare([QueueSpec("seen", "classic", ("env.expired",))])
    return broker


def drain(broker) -> list:
    from schemas.envelope import Event
    events = []
    while (delivery := broker.get("seen")) is not None:
        events.append(Event.from_json(delivery.message.body))
        delivery.ack()
    return events


def bench_sweep(kind: str, count: int, rounds: int, scratch: Path) -> dict[str, list[float]]:
    from scheduler.control import Scheduler
    from scheduler.firing import Emitter, Firer
    times = {"read the expired rows": [], "sweep": []}
    with state_database(kind, scratch, "sweep") as url:
        fill(url, count, lambda n: datetime.now(timezone.utc) - timedelta(seconds=n + 1))
        engine = make_engine(url)
        registry = Registry(engine)
        for _ in range(rounds):
            started = time.perf_counter()
            rows = registry.expired(datetime.now(timezone.utc))
            times["read the expired rows"].append(time.perf_counter() - started)
            broker = memory_bus()
            firer = Firer(control=Scheduler(engine), registry=registry, emitter=Emitter(broker, engine),
                          may_fire=lambda: True)  # a new one each round: it remembers what it sent
            started = time.perf_counter()
            swept = firer.sweep_expired()
            times["sweep"].append(time.perf_counter() - started)
            events = drain(broker)
            names = {e.data["env"] for e in events}
            if not (len(rows) == swept == len(events) == len(names) == count):
                raise SystemExit(f"sweep on {kind}: {swept} swept, {len(events)} published for {len(names)} "
                                 f"environments, not {count} each")
        engine.dispose()
    return times


def bench_scheduler(kind: str, count: int, scratch: Path) -> dict:
    """TTL rows for `count` environments all ending at one second; a SchedulerService expires them."""
    from scheduler.service import SchedulerService
    from scheduler.tables import expiries_table
    with state_database(kind, scratch, "scheduler") as url:
        end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=15)
        fill(url, count, lambda n: end)
        engine = make_engine(url)
        with engine.begin() as conn:  # the rows configure's `schedule_expiry` writes, in one INSERT
            conn.execute(expiries_table.insert(), [{"env": f"env-{n:04d}", "at": end.timestamp(),
                                                    "requested_at": time.time(), "fired_at": None}
                                                   for n in range(count)])
        broker = memory_bus()
        service = SchedulerService(engine=engine, broker=broker, registry=Registry(engine), schedules=[])
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        if time.time() > end.timestamp() - 3:
            raise SystemExit(f"scheduler on {kind}: filling took too long; the TTLs ended before it started")
        seen, last = [], None
        deadline = end.timestamp() + 120
        while time.time() < deadline:
            fresh = drain(broker)
            if fresh:
                seen += fresh
                last = time.time()
            if len({e.id for e in seen}) >= count and time.time() > last + 5:
                break  # all there, and 5 s with nothing more: any duplicate would have come by now
            time.sleep(0.05)
        stop.set()
        service.stop_soon()
        thread.join(30)
        seen += drain(broker)
        engine.dispose()
    return {"published": len(seen), "ids": len({e.id for e in seen}), "envs": len({e.data["env"] for e in seen}),
            "last_after_s": (last - end.timestamp()) if last else float("nan")}


# -- 100 chains ----------------------------------------------------------------------------------
def site(scratch: Path, label: str) -> tuple[Path, dict]:
    from clouds.local.sample import make_sample_production
    directory = scratch / label
    entry = make_sample_production(directory / "production" / "shop", rows=20)
    document = {"state_dir": str(directory / "state"), "productions": {"shop": entry}}
    (directory / "doppel.yaml").write_text(yaml.safe_dump(document))
    return directory, document


def requests(count: int, label: str) -> list:
    from doppel.cli.common import build_event
    return [build_event("env.requested", {"env": f"{label}-{n:03d}", "production": "shop"}) for n in range(count)]


def chain_times(registry, events, timeout: float) -> tuple[list[float], float]:
    """Wait until every request's environment is ready; (each chain's seconds, seconds until the last)."""
    from core.chain import request_id
    deadline = time.monotonic() + timeout
    pending = {request_id(e): e for e in events}
    seconds, last = [], None
    while pending and time.monotonic() < deadline:
        for key in list(pending):
            env = registry.by_request(key)
            if env is None:
                continue
            if env.state == "failed":
                raise SystemExit(f"chain {env.name} failed: {env.reason}")
            if env.state == READY:
                ready_at = next(t.at for t in registry.transitions(env) if t.to_state == READY)
                seconds.append((ready_at - pending.pop(key).time).total_seconds())
                last = ready_at if last is None else max(last, ready_at)
        time.sleep(0.2)
    if pending:
        raise SystemExit(f"{len(pending)} of {len(events)} chains not ready within {timeout:.0f} s")
    return seconds, (last - min(e.time for e in events)).total_seconds()


def bench_embedded(count: int, scratch: Path) -> tuple[list[float], float]:
    import functions
    from core.broker import event_message
    from doppel.app import App
    from doppel.config import parse_config
    directory, document = site(scratch, "embedded")
    saved = {k: os.environ.pop(k) for k in ("DOPPEL_DB_URL", "DOPPEL_AMQP_URL") if k in os.environ}
    try:
        app = App(parse_config(document, directory / "doppel.yaml"), role="run")
        app.worker(functions.FUNCTIONS).start()
        app.broker.start()
        events = requests(count, "embedded")
        app.broker.publish([event_message(e) for e in events])
        result = chain_times(app.registry, events, CHAIN_TIMEOUT)
        app.close()
    finally:
        os.environ.update(saved)
    return result


def rabbitmqctl(*args: str, check: bool = True) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=check).stdout


def consumers(vhost: str) -> dict[str, int]:
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "consumers")
    return {name: int(n) for name, n in (line.split() for line in listed.splitlines() if line.strip())}


def bench_rabbitmq(count: int, workers: int, amqp: str, db_kind: str, scratch: Path) -> tuple[list[float], float]:
    from core.broker import event_message
    from doppel.app import App
    from doppel.config import load_config
    directory, _ = site(scratch, "rabbitmq")
    vhost = f"doppel-bench-scale-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, amqp.split("://")[1].split(":")[0], ".*", ".*", ".*")
    url = f"{amqp.rstrip('/').rsplit('/', 1)[0]}/{quote(vhost, safe='')}?heartbeat=30"
    children = []
    try:
        with state_database(db_kind, scratch, "chains") as db_url:
            ensure_current(make_engine(db_url), "the bench's database")
            env = {**child_env(db_url), "DOPPEL_AMQP_URL": url, "DOPPEL_CONFIG": str(directory / "doppel.yaml")}
            for n in range(workers):
                log = open(directory / f"worker-{n}.log", "w")
                children.append(subprocess.Popen([sys.executable, "-m", "doppel", "worker"], cwd=directory,
                                                 env=env, stdout=log, stderr=log))
            deadline = time.monotonic() + 120
            while True:
                queues = {q: n for q, n in consumers(vhost).items() if q.startswith("doppel.fn.")
                          and not q.endswith((".dead", ".delay")) and ".delay." not in q}
                if queues and min(queues.values()) >= workers:
                    break
                if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                    raise SystemExit(f"the {workers} workers did not all consume within 120 s: {queues}; "
                                     f"see {directory}/worker-*.log")
                time.sleep(0.5)
            saved = {k: os.environ.get(k) for k in ("DOPPEL_DB_URL", "DOPPEL_AMQP_URL")}
            os.environ.update({"DOPPEL_DB_URL": db_url, "DOPPEL_AMQP_URL": url})
            try:
                app = App(load_config(directory / "doppel.yaml"))
                events = requests(count, "rabbit")
                app.broker.publish([event_message(e) for e in events])
                result = chain_times(app.registry, events, CHAIN_TIMEOUT)
                app.close()
            finally:
                for key, value in saved.items():
                    os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
            for child in children:
                child.terminate()
            for child in children:
                child.wait(30)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        rabbitmqctl("delete_vhost", vhost, check=False)
    return result


# -- printing ---------------------------------------------------------------------------------------
def show_times(title: str, times: dict[str, list[float]], baseline: str, cpu: dict | None = None) -> None:
    base = statistics.median(times[baseline])
    print(f"  {title}")
    print(f"    {'':<36} {'median s':>9} {'min s':>7} {'max s':>7} {'x ' + baseline:>28}"
          + (f" {'CPU s, median':>14}" if cpu else ""))
    for name, values in times.items():
        median = statistics.median(values)
        print(f"    {name:<36} {median:9.3f} {min(values):7.3f} {max(values):7.3f} {median / base:28.2f}"
              + (f" {statistics.median(cpu[name]):14.3f}" if cpu else ""))


def show_chains(label: str, seconds: list[float], wall: float) -> None:
    print(f"    {label:<44} p50 {percentile(seconds, 50):6.2f} s   p95 {percentile(seconds, 95):6.2f} s   "
          f"max {max(seconds):6.2f} s   all ready after {wall:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=1000, help="environments in the registry (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of env list and of the sweep (default 5)")
    parser.add_argument("--db", default="sqlite,postgresql", help="state databases for env list, the sweep and "
                        "the scheduler, comma-separated (default sqlite,postgresql)")
    parser.add_argument("--chains", type=int, default=100, help="environment chains requested at once (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="`doppel worker` processes (default 2)")
    parser.add_argument("--chain-db", default="postgresql", choices=("sqlite", "postgresql"),
                        help="the state database of the chains through RabbitMQ (default postgresql)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2F",
                        help="the RabbitMQ to use; the bench makes its own vhost there")
    parser.add_argument("--skip", default="", help="parts to leave out, comma-separated: list,sweep,scheduler,chains")
    parser.add_argument("--baseline", help="a commit whose `env list` is timed in the same rounds, for a before and "
                        "after on one run (its tree from `git archive`, its databases made by its own migrations)")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit}; {os.cpu_count()} CPU(s); load {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="doppel-bench-scale-") as scratch_dir:
        scratch = Path(scratch_dir)
        baseline = baseline_tree(args.baseline, scratch) if args.baseline and "list" not in skip else None
        for kind in kinds if {"list", "sweep", "scheduler"} - skip else []:
            print(f"{kind}, {args.envs} environments:", flush=True)
            if "list" not in skip:
                times, cpu = bench_list(kind, args.envs, args.rounds, scratch, baseline)
                show_times(f"`doppel env list` as a process, {args.rounds} rounds", times, "python -c pass", cpu)
                median = statistics.median(times[f"env list, {args.envs} environments"])
                empty = statistics.median(times["env list, empty registry"])
                print(f"    -> {median:.3f} s against the aim of {AIM_LIST_S:.0f} s "
                      f"({'met' if median < AIM_LIST_S else 'NOT met'}); the {args.envs} rows cost "
                      f"{median - empty:+.3f} s over an empty registry", flush=True)
                if baseline is not None:
                    before = statistics.median(times[f"baseline: env list, {args.envs} envs"])
                    print(f"    -> baseline {args.baseline}: {before:.3f} s; this code {median - before:+.3f} s",
                          flush=True)
            if "sweep" not in skip:
                times = bench_sweep(kind, args.envs, args.rounds, scratch)
                show_times(f"expiry sweep over {args.envs} expired environments, {args.rounds} rounds "
                           "(each got exactly one env.expired)", times, "read the expired rows")
            if "scheduler" not in skip:
                result = bench_scheduler(kind, args.envs, scratch)
                print(f"  scheduler service, {args.envs} TTLs ending in the same second: {result['published']} "
                      f"env.expired published, {result['ids']} distinct, for {result['envs']} environments; "
                      f"the last {result['last_after_s']:.2f} s after the TTLs ended", flush=True)
        if "chains" not in skip:
            print(f"{args.chains} environment chains requested at once (tiny production, local driver), "
                  "env.requested -> ready:", flush=True)
            seconds, wall = bench_embedded(args.chains, scratch)
            show_chains("embedded bus, one process (baseline)", seconds, wall)
            seconds, wall = bench_rabbitmq(args.chains, args.workers, args.amqp, args.chain_db, scratch)
            show_chains(f"RabbitMQ, {args.workers} worker processes, {args.chain_db} state", seconds, wall)
    print(f"load after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
