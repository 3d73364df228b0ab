"""Failover RTO on the local driver against the plain restore of the same backup, in the same run.

    python bench/failover.py [--sizes 10,100,1024] [--rounds 3] [--dir PATH] [--results bench/RESULTS.md]

For each production size (MB; about 80% incompressible application files, 20% a
SQLite database), the production is backed up once; then, alternating so the page
cache favours neither, each round times
- the plain restore of that backup into an empty directory (`Backups.restore`), and
- a failover: a `monitor.alert` published on the embedded bus -> `failover.done`, whose
  RTO runs from the alert's time to the DR copy serving (restored, probed, DNS switched).
The overhead of deciding, freezing the jobs, probing and switching DNS is RTO - restore.
The health probe (PRAGMA integrity_check of the restored database, paths present) is
timed apart, since it grows with the database while the rest does not.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import functions  # noqa: E402
from clouds.local.sample import make_sample_production  # noqa: E402
from core import dr  # noqa: E402
from core.broker import event_message  # noqa: E402
from core.cloud import DnsRecord  # noqa: E402
from core.dr_state import FAILED_OVER, NORMAL  # noqa: E402
from doppel.app import App  # noqa: E402
from doppel.cli.common import build_event  # noqa: E402
from doppel.config import parse_config  # noqa: E402

SECTION = "## Failover (issue 7)"


def build_production(root: Path, megabytes: int) -> dict:
    """The sample production grown to about `megabytes`: 1 MiB random files and a database of blobs."""
    entry = make_sample_production(root, rows=50)
    media = root / "app" / "media"
    media.mkdir(parents=True, exist_ok=True)
    for n in range(max(1, megabytes * 8 // 10)):
        (media / f"blob-{n:05d}.bin").write_bytes(os.urandom(1 << 20))
    with sqlite3.connect(root / "data" / "shop.db") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload BLOB)")
        rows = max(1, megabytes * 2 // 10) * (1 << 20) // 4000
        conn.executemany("INSERT INTO events (payload) VALUES (?)", ((os.urandom(4000),) for _ in range(rows)))
    return entry


def make_app(work: Path, entry: dict) -> App:
    document = {"state_dir": str(work / "state"), "productions": {"shop": entry},
                "dr": {"shop": {"target": {"env": "shop-dr"}, "alarms": ["shop-down"], "debounce": "1ms",
                                "dns": {"records": [{"name": "shop.example.com", "value": "127.0.0.20"}]}}}}
    return App(parse_config(document, None), role="bench", fast_forward=True)


def time_restore(app: App, backup_id: str, into: Path) -> float:
    started = time.perf_counter()
    app.backups.restore(backup_id, into)
    elapsed = time.perf_counter() - started
    shutil.rmtree(into)
    return elapsed


def time_failover(app: App, round_no: int) -> tuple[float, float]:
    """One alarm -> failover.done; (its RTO, the health probe's share), then back to normal for the next round."""
    event = build_event("monitor.alert", {"alarm_id": f"bench-{round_no}", "alarm_name": "shop-down",
                                          "previous": "ok", "current": "alarm"}, source="bench")
    app.broker.publish([event_message(event)])
    app.broker.run_until_idle(timeout=3600)
    done = [e for e in app.audit.events(event_type="failover.done") if e.correlation_id == event.id]
    if not done:
        failed = app.audit.events(event_type="failover.failed")
        raise SystemExit(f"round {round_no}: no failover.done ({failed[-1].data if failed else 'nothing'})")
    root = Path(app.cloud.stack_status("shop-dr").outputs["root"])
    started = time.perf_counter()
    app.deps.probe.files(app.config["productions"]["shop"], root, app.config["dr"]["shop"])
    probe = time.perf_counter() - started
    reset(app)
    return done[0].data["rto_seconds"], probe


def reset(app: App) -> None:
    """Cold DR target again (no DR copy), names home, jobs unfrozen: each round pays the full restore."""
    app.dr_states.move("shop", (FAILED_OVER,), NORMAL, holder=None, dr_backup_id=None, previous_dns=[])
    app.cloud.delete_stack("shop-dr", ignore_missing=True)
    app.cloud.switch_dns(DnsRecord("shop.example.com", "A", "127.0.0.10", 300))
    app.deps.scheduler.resume_jobs(dr.freeze_selector("shop"))


def measure(size: int, rounds: int, base: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"failover-{size}-", dir=base))
    try:
        entry = build_production(work / "production" / "shop", size)
        app = make_app(work, entry)
        app.worker(functions.FUNCTIONS).start()
        app.cloud.switch_dns(DnsRecord("shop.example.com", "A", "127.0.0.10", 300))
        manifest = app.backups.back_up("shop", app.cloud.backup_source("shop"), reason="manual")
        restores, rtos, probes = [], [], []
        for n in range(rounds):
            restores.append(time_restore(app, manifest.backup_id, work / f"plain-{n}"))
            rto, probe = time_failover(app, n)
            rtos.append(rto)
            probes.append(probe)
        app.close()
        return {"size": size, "backup_mb": manifest.size / 1e6, "restore": statistics.median(restores),
                "rto": statistics.median(rtos), "probe": statistics.median(probes), "rounds": rounds,
                "restore_min": min(restores), "rto_min": min(rtos)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(results: list[dict]) -> str:
    lines = ["| production | backup (zstd) | plain restore | failover RTO | overhead (RTO - restore) | of which probe "
             "| best restore / best RTO |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['size']} MB | {r['backup_mb']:.0f} MB | {r['restore']:.2f} s | {r['rto']:.2f} s | "
                     f"{r['rto'] - r['restore']:+.2f} s | {r['probe']:.2f} s | "
                     f"{r['restore_min']:.2f} s / {r['rto_min']:.2f} s |")
    return "\n".join(lines)


def record(path: Path, body: str, section: str = SECTION) -> None:
    """Write `section` of RESULTS.md (its heading starts `body`), leaving every other section as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(section)
    if start >= 0:
        end = text.find("\n## ", start + len(section))
        text = text[:start] + body + (text[end:] if end >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1024", help="production sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build the productions (default: a temp dir)")
    parser.add_argument("--results", default=None, help="write the table into this RESULTS.md's section")
    args = parser.parse_args()
    base = Path(args.dir) if args.dir else None
    load_before = os.getloadavg()[0]
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        results.append(measure(size, args.rounds, base))
        print(table(results[-1:]).splitlines()[-1], flush=True)
    print(table(results))
    if args.results:
        body = (f"{SECTION}\n\n`python bench/failover.py --sizes {args.sizes} --rounds {args.rounds}` "
                f"on {os.cpu_count()} CPU(s); medians of {args.rounds} rounds, restore and failover alternating, "
                f"cold DR target each round; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (a "
                f"shared machine: read the best-of columns beside the medians).\n\n{table(results)}\n\n"
                "RTO counts from the alert's time to serving: the bus hop, the lock, freezing the jobs, the "
                "restore, the health probe (integrity_check grows with the database), and the DNS switch. "
                "A warm DR copy (a sync already restored that backup) skips the restore.\n")
        record(Path(args.results), body)


if __name__ == "__main__":
    main()
