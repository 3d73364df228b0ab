"""Cloning a production with the local driver, against `cp -a` of the same tree in the same run.

    python bench/clone.py [--files-mib 1024] [--db-mib 200] [--rounds 2] [--dir PATH]

The production: --files-mib of incompressible application files (1 MiB each, plus
a few thousand small ones) and a SQLite database of about --db-mib. A clone is
what `doppel env create` costs on the local driver: the snapshot (files copied,
the database through SQLite's online backup API) and the stack built from it.
The configure step (rewrites and anonymisation) is timed apart, as is the whole
chain's overhead, env.requested -> env.ready, on a tiny production through the
embedded bus. Rounds alternate cp and Doppel so that page-cache warmth is shared.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clouds.local.driver import LocalDriver  # noqa: E402
from clouds.local.sample import make_sample_production, sample_entry  # noqa: E402


def build_production(root: Path, files_mib: int, db_mib: int) -> dict:
    entry = make_sample_production(root, rows=50)
    blobs = root / "app" / "media"
    blobs.mkdir(parents=True, exist_ok=True)
    for n in range(files_mib):
        (blobs / f"blob-{n:05d}.bin").write_bytes(os.urandom(1 << 20))
    for n in range(3000):
        (root / "app" / "static" / f"page-{n:04d}.html").write_text(f"<p>page {n}</p>\n" * 20)
    with sqlite3.connect(root / "data" / "shop.db") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload BLOB)")
        chunk = os.urandom(4000)
        rows = db_mib * (1 << 20) // 4000
        conn.executemany("INSERT INTO events (payload) VALUES (?)", ((chunk,) for _ in range(rows)))
    return entry


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def time_cp(production: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", "-a", str(production), str(target)], check=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def time_doppel(driver: LocalDriver, env: str) -> tuple[float, float]:
    started = time.perf_counter()
    snapshot = driver.snapshot("shop", env, f"bench/{env}")
    stack = driver.create_stack(env, snapshot, {}, f"bench/{env}")
    cloned = time.perf_counter() - started
    assert stack.complete, stack.status_reason
    started = time.perf_counter()
    driver.configure(env, stack, sample_entry(Path(driver.productions["shop"]["path"]))["clone"],
                     {"db_password": "bench-pw-1", "app_secret": "bench-secret-1"})
    configured = time.perf_counter() - started
    driver.delete_stack(env)
    driver.delete_snapshot(snapshot.id)
    return cloned, configured


def chain_overhead(work: Path, runs: int = 10) -> list[float]:
    """env.requested -> env.ready through the embedded bus and every function, tiny production."""
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
    for n in range(runs):
        event = build_event("env.requested", {"env": f"tiny-{n}", "production": "shop"})
        started = time.perf_counter()
        app.broker.publish([event_message(event)])
        app.broker.run_until_idle()
        times.append((time.perf_counter() - started) * 1000)
        assert app.registry.by_request(request_id(event)).state == "ready"
    app.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-mib", type=int, default=1024)
    parser.add_argument("--db-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", help="work directory (default: a temporary one on the same disk as /tmp)")
    args = parser.parse_args()
    os.environ.pop("DOPPEL_DB_URL", None)
    os.environ.pop("DOPPEL_AMQP_URL", None)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        production = work / "production" / "shop"
        started = time.perf_counter()
        entry = build_production(production, args.files_mib, args.db_mib)
        print(f"production: {size_of(production) / (1 << 30):.2f} GiB in "
              f"{sum(1 for _ in production.rglob('*'))} entries (built in {time.perf_counter() - started:.0f} s)")
        driver = LocalDriver(work / "state", {"shop": entry})
        cp_times, doppel_times, configure_times = [], [], []
        for n in range(args.rounds):
            cp_times.append(time_cp(production, work / "cp-copy"))
            cloned, configured = time_doppel(driver, f"bench-{n}")
            doppel_times.append(cloned)
            configure_times.append(configured)
            print(f"round {n + 1}: cp -a {cp_times[-1]:.2f} s, doppel clone {cloned:.2f} s "
                  f"(+ configure {configured:.2f} s)")
        cp, doppel = statistics.median(cp_times), statistics.median(doppel_times)
        print(f"clone ratio (doppel snapshot+stack / cp -a), medians: {doppel / cp:.2f}  "
              f"({doppel:.2f} s vs {cp:.2f} s)")
        print(f"configure (rewrite, crons, anonymise 50 customers): median {statistics.median(configure_times):.2f} s")
        overhead = chain_overhead(work)
        print(f"chain overhead env.requested -> env.ready, tiny production, embedded bus: "
              f"median {statistics.median(overhead):.0f} ms, min {min(overhead):.0f} ms over {len(overhead)} runs")


if __name__ == "__main__":
    main()
