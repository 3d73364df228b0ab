"""Backing up to Swift: Doppel's backup against the `swift` CLI on the same data, in the same run.

    python bench/backup.py [--gib 1] [--mem-gib 5] [--rounds 2] [--quick] [--dir PATH]

Needs the local Swift of tests/services/swift.sh (127.0.0.1:8080, tempauth test:tester).

The data: --gib of incompressible files (random bytes: 8 MiB files plus 256 small
ones) and a SQLite database in WAL mode held open with an uncheckpointed WAL,
so the backup takes its consistent-capture path.

Upload: Doppel's `write_backup` to a SwiftStore made by `make_store` with its
defaults (32 MiB segments, 4 threads) streams a zstd tar of the tree, against
`swift upload --segment-size 100M --segment-threads 4` of a tar of the same tree
made beforehand (not timed): random data does not compress, so both send the same
number of bytes (both sizes printed). Both run as child processes, alternating,
timed from start to exit (interpreter start and authentication included for both).
Restore: Doppel's `restore` (download, sha256, zstd -d, extract) against
`swift download` of the same archive object into one file, and, for context,
`swift download -o - | zstd -d | tar -x`, the restore by hand of
docs/restore-by-hand.md, which does the same work as Doppel.
Memory: the peak RSS of a child process backing up --mem-gib, read with wait4.

MB is 10^6 bytes. Everything the bench uploads is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

AUTH_URL = "http://127.0.0.1:8080/auth/v1.0"
USER, KEY = "test:tester", "testing"       # the test Swift's tempauth account (tests/services/swift.sh)
KEY_ENV = "DOPPEL_BENCH_SWIFT_KEY"
MiB = 1 << 20
GiB = 1 << 30
BIG_FILE = 8 * MiB
SMALL_FILES, SMALL_FILE = 256, 4096
SWIFT_CLI = ["swift", "-A", AUTH_URL, "-U", USER, "-K", KEY]


# ----------------------------------------------------------------------------- the data

def build_tree(root: Path, total: int) -> sqlite3.Connection:
    """`total` bytes of random files and a WAL database; returns the connection that keeps its WAL alive."""
    db_bytes = min(16 * MiB, total // 16)
    (root / "data").mkdir(parents=True)
    conn = sqlite3.connect(root / "data" / "shop.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")       # keep the rows in the -wal: the backup must copy both
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, payload BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO orders (payload) VALUES (?)", ((os.urandom(4000),) for _ in range(db_bytes // 4096)))
    conn.execute("COMMIT")
    small = root / "static"
    small.mkdir()
    for n in range(SMALL_FILES):
        (small / f"page-{n:04d}.bin").write_bytes(os.urandom(SMALL_FILE))
    media = root / "media"
    media.mkdir()
    left = total - size_of(root)
    n = 0
    while left > 0:
        size = min(BIG_FILE, left)
        (media / f"blob-{n:05d}.bin").write_bytes(os.urandom(size))   # random per file: no repeats for zstd
        left -= size
        n += 1
    return conn


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- child processes

class Run:
    """A child process run to its end: wall seconds, CPU seconds and peak RSS (bytes) of that process."""

    def __init__(self, seconds: float, usage, out: str):
        self.seconds = seconds
        self.cpu = usage.ru_utime + usage.ru_stime
        self.rss = usage.ru_maxrss * 1024
        self.out = out


def run_child(argv: list[str], env: dict | None = None, stdout=subprocess.DEVNULL) -> Run:
    """Run a command to its end; raises SystemExit with its stderr if it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        # wait4, not wait: its rusage is this child's (and its own children's), where RUSAGE_CHILDREN
        # would give the largest of every child this bench ran.
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=stdout, stderr=err)
        out = proc.stdout.read().decode() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} ... failed ({proc.returncode}): "
                             f"{err.read().decode(errors='replace').strip()[-2000:]}")
    return Run(elapsed, usage, out)


def doppel_child(mode: str, **spec) -> tuple[Run, dict]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(spec)]
    run = run_child(argv, env={KEY_ENV: KEY}, stdout=subprocess.PIPE)
    return run, json.loads(run.out)


def child_main(mode: str, spec: dict) -> None:
    """In a fresh process: one Doppel backup or restore, as `doppel backup now` / `restore` would run it."""
    from clouds.backups import find_backup, restore, write_backup
    from clouds.stores import make_store
    from core.cloud import BackupSource

    store = make_store({"type": "swift", "container": spec["container"], "auth_url": AUTH_URL, "user": USER,
                        "key_env": KEY_ENV})
    started = time.perf_counter()
    if mode == "backup":
        manifest = write_backup(store, spec["env"], BackupSource(root=Path(spec["root"]), databases=("data/shop.db",)))
        result = {"backup_id": manifest.backup_id, "key": manifest.archive_key, "size": manifest.size,
                  "databases": [c.files for c in manifest.databases]}
    else:
        manifest = restore(store, find_backup(store, spec["backup_id"], spec["env"]), Path(spec["target"]))
        result = {"size": manifest.size}
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result))


# ----------------------------------------------------------------------------- the store

def swift_connection():
    import swiftclient
    return swiftclient.Connection(authurl=AUTH_URL, user=USER, key=KEY, retries=2)


def empty_containers(containers: list[str], remove: bool = False) -> None:
    """Delete every object in `containers` (manifests first, then segments), and the containers when asked."""
    import swiftclient
    conn = swift_connection()
    for container in containers:
        try:
            names = [o["name"] for o in conn.get_container(container, full_listing=True)[1]]
        except swiftclient.ClientException as exc:
            if exc.http_status == 404:
                continue
            raise
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda name, container=container: swift_connection().delete_object(container, name), names))
        if remove:
            conn.delete_container(container)


# ----------------------------------------------------------------------------- the runs

def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def line(who: str, round_: int, run: Run, size: int, extra: str = "") -> str:
    return (f"  round {round_}: {who:<15}{run.seconds:6.2f} s {mbps(size, run.seconds):5.0f} MB/s  "
            f"CPU {run.cpu:5.2f} s  peak RSS {run.rss / MiB:4.0f} MiB{extra}")


def upload_rounds(args, root: Path, tar: Path, containers: dict) -> dict:
    """Alternating uploads; each tool has its own container, emptied before its run, so Doppel's last backup stays."""
    tar_size = tar.stat().st_size
    times: dict[str, list[float]] = {"swift": [], "doppel": []}
    backup = {}
    for n in range(args.rounds):
        for who in ("swift", "doppel") if n % 2 == 0 else ("doppel", "swift"):
            container = containers[who]
            empty_containers([container, f"{container}_segments"])
            if who == "swift":
                run = run_child([*SWIFT_CLI, "upload", "--segment-size", "100M", "--segment-threads", "4",
                                 "--object-name", "cli/tree.tar", container, str(tar)])
                print(line("swift upload", n + 1, run, tar_size))
            else:
                run, backup = doppel_child("backup", container=container, env="bench", root=str(root))
                print(line("doppel backup", n + 1, run, backup["size"],
                           f"  (write_backup alone {backup['seconds']:.2f} s)"))
            times[who].append(run.seconds)
    swift = mbps(tar_size, statistics.median(times["swift"]))
    doppel = mbps(backup["size"], statistics.median(times["doppel"]))
    print(f"upload: doppel {doppel:.0f} MB/s, swift CLI {swift:.0f} MB/s (medians); "
          f"ratio doppel/swift {doppel / swift:.2f}x")
    return backup


def restore_rounds(args, work: Path, container: str, backup: dict) -> None:
    times: dict[str, list[float]] = {"swift": [], "doppel": [], "by-hand": []}
    size = backup["size"]
    out_file, out_dir = work / "download.tar.zst", work / "restored"
    for n in range(args.rounds):
        for who in ("swift", "doppel", "by-hand") if n % 2 == 0 else ("by-hand", "doppel", "swift"):
            if who == "swift":
                run = run_child([*SWIFT_CLI, "download", container, backup["key"], "-o", str(out_file)])
                assert out_file.stat().st_size == size, "swift download: wrong size"
                out_file.unlink()
                print(line("swift download", n + 1, run, size))
            elif who == "doppel":
                run, _ = doppel_child("restore", container=container, env="bench", backup_id=backup["backup_id"],
                                      target=str(out_dir))
                shutil.rmtree(out_dir)
                print(line("doppel restore", n + 1, run, size))
            else:
                out_dir.mkdir()
                command = (f"{' '.join(SWIFT_CLI)} download {container} {backup['key']} -o - "
                           f"| zstd -d -q | tar -x -C {out_dir}")
                run = run_child(["bash", "-o", "pipefail", "-c", command])
                shutil.rmtree(out_dir)
                print(line("by hand", n + 1, run, size, "  (swift download -o - | zstd -d | tar -x: "
                                                        "CPU of the whole pipeline, RSS of its largest)"))
            times[who].append(run.seconds)
    swift, doppel, by_hand = (mbps(size, statistics.median(times[k])) for k in ("swift", "doppel", "by-hand"))
    print(f"restore: doppel {doppel:.0f} MB/s, swift download {swift:.0f} MB/s, by hand {by_hand:.0f} MB/s "
          f"(medians); ratio doppel/swift download {doppel / swift:.2f}x, doppel/by hand {doppel / by_hand:.2f}x")


def memory_run(args, work: Path, container: str) -> None:
    root = work / "mem-tree"
    started = time.perf_counter()
    conn = build_tree(root, int(args.mem_gib * GiB))
    print(f"memory: {size_of(root) / GiB:.2f} GiB of random files built in {time.perf_counter() - started:.0f} s")
    try:
        run, backup = doppel_child("backup", container=container, env="bench-memory", root=str(root))
    finally:
        conn.close()
        shutil.rmtree(root)
    print(f"memory: doppel backup of {backup['size'] / GiB:.2f} GiB: peak RSS {run.rss / MiB:.0f} MiB "
          f"({run.seconds:.1f} s, {mbps(backup['size'], run.seconds):.0f} MB/s, CPU {run.cpu:.1f} s)")
    empty_containers([container, f"{container}_segments"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, help="data backed up in the timed rounds (default 1)")
    parser.add_argument("--mem-gib", type=float, help="data backed up for the peak-memory run (default 5; 0: skip)")
    parser.add_argument("--rounds", type=int, help="rounds of each tool, alternating who goes first (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: defaults of 0.125 GiB, 0.25 GiB, 1 round")
    parser.add_argument("--dir", help="work directory (default: a temporary one under /var/tmp)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.child[0], json.loads(args.child[1]))
    defaults = (0.125, 0.25, 1) if args.quick else (1.0, 5.0, 2)
    for name, default in zip(("gib", "mem_gib", "rounds"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    name = f"doppel-bench-{uuid.uuid4().hex[:8]}"
    containers = {"doppel": name, "swift": f"{name}-cli"}
    every = [c for container in containers.values() for c in (container, f"{container}_segments")]
    with tempfile.TemporaryDirectory(prefix="doppel-bench-backup-", dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        try:
            root = work / "tree"
            started = time.perf_counter()
            conn = build_tree(root, int(args.gib * GiB))
            wal = (root / "data" / "shop.db-wal").stat().st_size
            tar = work / "tree.tar"
            subprocess.run(["tar", "-cf", str(tar), "-C", str(root), "."], check=True)
            print(f"data: {size_of(root) / GiB:.2f} GiB in {sum(1 for _ in root.rglob('*'))} entries, "
                  f"database WAL {wal / MiB:.0f} MiB (built in {time.perf_counter() - started:.0f} s); "
                  f"tar for the swift CLI: {tar.stat().st_size / 1e6:.0f} MB")
            print(f"upload ({args.rounds} rounds, alternating), containers {name}, {name}-cli:")
            backup = upload_rounds(args, root, tar, containers)
            print(f"  doppel archive {backup['size'] / 1e6:.0f} MB (zstd tar), swift CLI's tar "
                  f"{tar.stat().st_size / 1e6:.0f} MB; databases captured: {backup['databases']}")
            conn.close()
            tar.unlink()
            shutil.rmtree(root)
            empty_containers([containers["swift"], f"{containers['swift']}_segments"])
            print("restore of that backup:")
            restore_rounds(args, work, name, backup)
            empty_containers(every)
            if args.mem_gib > 0:
                memory_run(args, work, name)
        finally:
            empty_containers(every, remove=True)

if __name__ == "__main__":
    main()
