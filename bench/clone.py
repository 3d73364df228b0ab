"""Cloning productions of two sizes with the local driver, against `cp` of the same trees in the same run.

    python bench/clone.py [--sizes 1.2,12] [--fs xfs|ext4] [--rounds 5] [--dir /var/tmp] [--amqp URL]
                          [--full-copy] [--chain-runs 15] [--chain-only] [--py-spy FILE]
                          [--state-db URL]

The bench makes a filesystem of its own (--fs, default xfs: reflinks, the mkfs.xfs
default; ext4 has none, so the driver falls back to full copies and says so) on a sparse
loop file under --dir, mounts it, and deletes it at the end: it needs root and
xfsprogs (tests/services/xfs.sh). Each production of --sizes GB: the sample
production, 3,000 small pages, 256 incompressible media files and a SQLite database of
a fifth of the size; the file count is the same at every size, so what grows is bytes.
A clone is what `doppel env create` costs on the local driver: the snapshot (files
reflinked or copied, the database through clouds.local.sqlite) and the stack built from
it. Against it, timed the same way on the same tree, alternating who goes first:
`cp -a` (coreutils 9 reflinks by default where it can) and `cp -a --reflink=always`;
with --full-copy also `cp -a --reflink=never`, the cost of a real copy. The configure
step (rewrites and anonymisation, then VACUUM, which rewrites the database) is timed
apart, once per size, as is the teardown.

Then the whole chain's overhead, env.requested -> env.ready on a tiny production, on
the embedded bus and through RabbitMQ with one `doppel worker` process (a vhost of its
own on --amqp's broker, deleted at the end).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clouds.local.copying import filesystem_of  # noqa: E402
from clouds.local.driver import LocalDriver  # noqa: E402
from clouds.local.sample import make_sample_production, sample_entry  # noqa: E402
from tests.support.loopfs import LoopUnavailable, loop_filesystem  # noqa: E402

GIB, MIB = 1 << 30, 1 << 20
MEDIA_FILES, PAGES = 256, 3000


def build_production(root: Path, gib: float, db_share: float, pool: bytes) -> dict:
    """The sample production grown to `gib`: media files and a database; the same number of files at any size."""
    entry = make_sample_production(root, rows=50)
    media = root / "app" / "media"
    media.mkdir(parents=True, exist_ok=True)
    per_file = int(gib * GIB * (1 - db_share) / MEDIA_FILES)
    for n in range(MEDIA_FILES):
        with open(media / f"blob-{n:04d}.bin", "wb") as handle:
            handle.write(os.urandom(64))  # each file its own
            written, offset = 64, (n * 7919 * 4096) % len(pool)
            while written < per_file:
                piece = pool[offset:offset + min(per_file - written, len(pool) - offset)]
                handle.write(piece)
                written, offset = written + len(piece), 0
    for n in range(PAGES):
        (root / "app" / "static" / f"page-{n:04d}.html").write_text(f"<p>page {n}</p>\n" * 20)
    row = 16000
    rows = int(gib * GIB * db_share) // row
    conn = sqlite3.connect(root / "data" / "shop.db")
    with conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload BLOB)")
        conn.executemany("INSERT INTO events (payload) VALUES (?)",
                         ((pool[(n * row) % (len(pool) - row):(n * row) % (len(pool) - row) + row],)
                          for n in range(rows)))
    conn.close()
    return entry


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def settle(mount: Path) -> None:
    """Untimed, after every copy's removal: write back what is dirty, so that no tool pays for another's."""
    subprocess.run(["sync", "--file-system", str(mount)], check=True)


def time_cp(options: list[str], production: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", "-a", *options, str(production), str(target)], check=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    settle(target.parent)
    return elapsed


def time_doppel(driver: LocalDriver, production: str, env: str, configure: bool) -> tuple[float, float | None, float]:
    """(clone s, configure s or None, teardown s) of one environment."""
    started = time.perf_counter()
    snapshot = driver.snapshot(production, env, f"bench/{env}")
    stack = driver.create_stack(env, snapshot, {}, f"bench/{env}")
    cloned = time.perf_counter() - started
    assert stack.complete, stack.status_reason
    configured = None
    if configure:
        started = time.perf_counter()
        driver.configure(env, stack, sample_entry(Path(driver.productions[production]["path"]))["clone"],
                         {"db_password": "bench-pw-1", "app_secret": "bench-secret-1"})
        configured = time.perf_counter() - started
    started = time.perf_counter()
    driver.delete_stack(env)
    driver.delete_snapshot(snapshot.id)
    gone = time.perf_counter() - started
    settle(driver.state_dir)
    return cloned, configured, gone


def chain_overhead_embedded(work: Path, runs: int) -> list[float]:
    """env.requested -> env.ready through the embedded bus and every function, tiny production (ms)."""
    import functions
    from core.broker import event_message
    from core.chain import request_id
    from doppel.app import App
    from doppel.cli.common import build_event
    from doppel.config import parse_config

    entry = make_sample_production(work / "tiny" / "shop", rows=20)
    app = App(parse_config({"state_dir": str(work / "tiny-state"), "productions": {"shop": entry}}, None))
    app.worker(functions.FUNCTIONS).start()
    times = []
    for n in range(runs + 1):  # the first warms up, as on RabbitMQ
        event = build_event("env.requested", {"env": f"tiny-{n}", "production": "shop"})
        started = time.perf_counter()
        app.broker.publish([event_message(event)])
        app.broker.run_until_idle()
        times.append((time.perf_counter() - started) * 1000)
        assert app.registry.by_request(request_id(event)).state == "ready"
    app.close()
    return times[1:]


def rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True)


def chain_overhead_rabbitmq(work: Path, amqp: str, runs: int, py_spy: str | None = None,
                            state_db: str | None = None) -> list[float]:
    """env.requested -> env.ready through RabbitMQ and one `doppel worker` process, tiny production (ms): from
    before the CLI's confirmed publish to env.ready reaching a queue of the bench's own."""
    import pika
    import yaml

    from bus.rabbitmq.broker import RabbitBroker
    from core.broker import EXCHANGE, event_message
    from doppel.cli.common import build_event

    vhost = f"doppel-bench-{os.getpid()}-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    worker = log = None
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"{amqp.rstrip('/')}/{quote(vhost, safe='')}"
        site = work / "rmq"
        entry = make_sample_production(site / "production" / "shop", rows=20)
        config = site / "doppel.yaml"
        config.write_text(yaml.safe_dump({"state_dir": str(site / "state"), "productions": {"shop": entry}}))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}, "DOPPEL_AMQP_URL": url,
               "DOPPEL_DB_URL": state_db or f"sqlite:///{site / 'doppel.db'}", "DOPPEL_CONFIG": str(config),
               "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "doppel", "db", "upgrade"], env=env, check=False, capture_output=True)
        subprocess.run([sys.executable, "-m", "doppel", "topology", "--declare"], env=env, check=True,
                       capture_output=True)
        log = open(site / "worker.log", "w")
        worker = subprocess.Popen([sys.executable, "-m", "doppel", "worker"], env=env, stdout=log, stderr=log)
        listener = pika.BlockingConnection(pika.URLParameters(url))
        channel = listener.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, EXCHANGE, routing_key="env.ready")
        publisher = RabbitBroker(url)
        times, spy = [], None
        for n in range(runs + 1):  # the first waits for the worker to start
            if n == 1 and py_spy:
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker.pid), "--format", "raw",
                                        "--rate", "250", "--threads", "--output", py_spy],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)  # py-spy attaching; not timed
            event = build_event("env.requested", {"env": f"tiny-{n}", "production": "shop"})
            started = time.perf_counter()
            publisher.publish([event_message(event)])
            for _method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=120):
                if body is None:
                    raise SystemExit(f"no env.ready for {event.id} within 120 s; see {site / 'worker.log'}")
                if properties.correlation_id == event.correlationid or \
                        json.loads(body).get("data", {}).get("env") == f"tiny-{n}":
                    break
            times.append((time.perf_counter() - started) * 1000)
            channel.cancel()
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(timeout=60)
        publisher.close()
        listener.close()
        return times[1:]
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if log is not None:
            log.close()
        rabbitmqctl("delete_vhost", vhost, check=False)


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(productions: dict, results: dict, full_copy: dict, configure: dict, teardown: dict) -> None:
    print()
    reflinks = all(results[name].get("cp -a --reflink=always") for name in productions)
    print("| production | doppel clone (median, min) | cp -a | doppel / cp -a |"
          + (" cp -a --reflink=always | doppel / reflink cp |" if reflinks else "")
          + (" cp --reflink=never |" if full_copy else "") + " configure | teardown |")
    for name, gib in productions.items():
        row = results[name]
        doppel = median(row["doppel"])
        cells = [f"{gib:g} GB", f"{doppel:.3f} s ({min(row['doppel']):.3f})", f"{median(row['cp -a']):.3f} s",
                 f"{doppel / median(row['cp -a']):.2f}x"]
        if reflinks:
            cells += [f"{median(row['cp -a --reflink=always']):.3f} s",
                      f"{doppel / median(row['cp -a --reflink=always']):.2f}x"]
        if full_copy:
            cells.append(f"{full_copy[name]:.2f} s")
        cells += [f"{configure[name]:.2f} s", f"{median(teardown[name]):.3f} s"]
        print("| " + " | ".join(cells) + " |")
    small, large = min(productions, key=productions.get), max(productions, key=productions.get)
    if small != large:
        ratio = median(results[large]["doppel"]) / median(results[small]["doppel"])
        slowest = max(median(results[name]["doppel"]) for name in productions)
        print(f"clone time {productions[large]:g} GB / {productions[small]:g} GB, medians: {ratio:.2f}x "
              f"(aim <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}); slowest median {slowest:.3f} s "
              f"(aim < 2 s: {'met' if slowest < 2 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1.2,12", help="production sizes in GB (GiB), comma-separated")
    parser.add_argument("--fs", choices=("xfs", "ext4"), default="xfs")
    parser.add_argument("--db-share", type=float, default=0.2, help="the database's share of each production")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp", help="where the loop file goes (sparse; deleted at the end)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672",
                        help="RabbitMQ for the chain overhead (a vhost of the bench's own); 'none' to skip")
    parser.add_argument("--chain-runs", type=int, default=15)
    parser.add_argument("--full-copy", action="store_true", help="also time cp -a --reflink=never (a real copy)")
    parser.add_argument("--chain-only", action="store_true", help="only the chain overhead (no productions)")
    parser.add_argument("--state-db", metavar="URL", help="the RabbitMQ worker's state database (default: a SQLite "
                                                          "file of its own); it must be empty")
    parser.add_argument("--py-spy", metavar="FILE", help="record the RabbitMQ worker with py-spy into FILE "
                                                         "(collapsed stacks) during the chain runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        sizes = [float(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes takes numbers of GB separated by commas, not {args.sizes!r}")
    os.environ.pop("DOPPEL_DB_URL", None)
    os.environ.pop("DOPPEL_AMQP_URL", None)
    if args.chain_only:
        sizes = []
    needed = sum(sizes) * 1.1 + (max(sizes, default=0) if args.full_copy else 0) + 4
    free = shutil.disk_usage(args.dir).free / GIB
    if needed > free - 10:
        raise SystemExit(f"{args.dir} has {free:.0f} GiB free; the bench needs {needed:.0f} GiB and leaves 10")
    print(f"load (uptime): {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{os.cpu_count()} CPUs; loop file up to {needed:.0f} GiB in {args.dir} ({free:.0f} GiB free)")
    with loop_filesystem(args.fs, int(needed * GIB), under=args.dir) as mount:
        print(f"filesystem: {filesystem_of(mount)[0]} on a loop device at {mount}")
        pool = os.urandom(64 * MIB)
        productions, entries = {}, {}
        for index, gib in enumerate(sizes):
            name = f"shop{index}"
            started = time.perf_counter()
            entries[name] = build_production(mount / "production" / name, gib, args.db_share, pool)
            # dirty pages would be written back by the first clone (FICLONE flushes its source) or cp
            subprocess.run(["sync", "--file-system", str(mount)], check=True)
            productions[name] = gib
            root = mount / "production" / name
            print(f"production {name}: {size_of(root) / GIB:.2f} GiB in {sum(1 for _ in root.rglob('*'))} entries "
                  f"(built and synced in {time.perf_counter() - started:.0f} s)")
        driver = LocalDriver(mount / "state", entries)
        tools = {"cp -a": [], "cp -a --reflink=always": ["--reflink=always"]}
        if args.fs != "xfs":
            print(f"cp -a --reflink=always: refused on {args.fs} (no reflinks), so not timed")
            del tools["cp -a --reflink=always"]
        results = {name: {tool: [] for tool in [*tools, "doppel"]} for name in productions}
        full_copy = {name: time_cp(["--reflink=never"], mount / "production" / name, mount / "cp-copy")
                     for name in productions} if args.full_copy else {}
        for name, seconds in full_copy.items():
            print(f"{productions[name]:g} GB: cp -a --reflink=never (a real copy, once) {seconds:.2f} s")
        configure, teardown = {}, {name: [] for name in productions}
        for n in range(args.rounds):
            for name in productions:
                order = [*tools, "doppel"]
                order = order[n % len(order):] + order[:n % len(order)]
                line = []
                for tool in order:
                    if tool == "doppel":
                        cloned, configured, gone = time_doppel(driver, name, f"bench-{name}-{n}", configure=n == 0)
                        results[name]["doppel"].append(cloned)
                        teardown[name].append(gone)
                        if configured is not None:
                            configure[name] = configured
                    else:
                        results[name][tool].append(time_cp(tools[tool], mount / "production" / name,
                                                           mount / "cp-copy"))
                    if results[name][tool]:
                        line.append(f"{tool} {results[name][tool][-1]:.3f} s")
                print(f"round {n + 1}, {productions[name]:g} GB: " + ", ".join(line))
        if productions:
            report(productions, results, full_copy, configure, teardown)
        embedded = chain_overhead_embedded(mount, args.chain_runs)
        print(f"chain overhead env.requested -> env.ready, tiny production: embedded bus median "
              f"{median(embedded):.0f} ms (min {min(embedded):.0f}) over {len(embedded)} runs", end="")
        if args.amqp != "none":
            rabbit = chain_overhead_rabbitmq(mount, args.amqp, args.chain_runs, args.py_spy, args.state_db)
            print(f"; RabbitMQ, one worker process: median {median(rabbit):.0f} ms (min {min(rabbit):.0f}, "
                  f"max {max(rabbit):.0f}) over {len(rabbit)} runs (aim < 120 ms: "
                  f"{'met' if median(rabbit) < 120 else 'NOT met'})")
        else:
            print()
        shutil.rmtree(mount / "production", ignore_errors=True)  # discard: the loop file gives the blocks back
    load = os.getloadavg()
    print(f"load after (uptime): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    try:
        main()
    except LoopUnavailable as exc:  # e.g. mkfs.xfs missing: say what to install, not a traceback
        raise SystemExit(f"{exc}") from None
