"""How long a person waits for the `doppel` command: `--help`, `--version`, and `env list` with 1,000 environments.

    python bench/cli_startup.py [--rounds 7] [--envs 1000] [--before PATH]

Every command runs as a child process (interpreter start included), rounds
alternating, against a baseline measured in the same run: `python -c pass`, the
interpreter alone. With --before, the same commands run from another checkout
too (e.g. a git worktree of the commit before a change), on the same state.
Prints the median and minimum of each, and its ratio to the baseline.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fill_state(state: Path, count: int) -> None:
    """`count` ready environments in a fresh SQLite state, as the registry writes them."""
    sys.path.insert(0, str(ROOT))
    from core.db import make_engine
    from core.registry import CLONING, CONFIGURING, READY, SNAPSHOTTING, Registry
    state.mkdir(parents=True, exist_ok=True)
    from doppel import migrations
    engine = make_engine(f"sqlite:///{state / 'doppel.db'}")
    migrations.upgrade(engine)
    registry = Registry(engine)
    for n in range(count):
        env, _ = registry.request(name=f"env-{n:04d}", request_id=f"bench/{n}", production="shop", owner="bench",
                                  ttl_seconds=86400)
        for step in (SNAPSHOTTING, CLONING, CONFIGURING):
            env = registry.move(env, step)
        registry.move(env, READY, endpoints={"root": f"/srv/env-{n:04d}"},
                      expires_at=datetime.now(timezone.utc) + timedelta(days=1))
    engine.dispose()


def timed(argv: list[str], cwd: Path, pythonpath: Path | None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--envs", type=int, default=1000)
    parser.add_argument("--before", type=Path, help="another checkout to time the same commands from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        (cwd / "doppel.yaml").write_text("state_dir: state\n")
        fill_state(cwd / "state", args.envs)
        doppel = [sys.executable, "-m", "doppel"]
        cases = {"python -c pass (baseline)": ([sys.executable, "-c", "pass"], None)}
        for label, checkout in (("this checkout", ROOT), ("before", args.before)):
            if checkout is None:
                continue
            for words in (["--help"], ["--version"], ["env", "list"]):
                cases[f"{label}: doppel {' '.join(words)}"] = (doppel + words, checkout)
        times = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (argv, checkout) in cases.items():
                try:
                    times[name].append(timed(argv, cwd, checkout))
                except subprocess.CalledProcessError:
                    times[name].append(float("nan"))  # e.g. --version before it existed
        base = statistics.median(times["python -c pass (baseline)"])
        print(f"{args.rounds} rounds, {args.envs} environments; load {os.getloadavg()[0]:.1f}")
        print(f"{'command':<44} {'median s':>9} {'min s':>7} {'x baseline':>11}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<44} {median:9.3f} {min(values):7.3f} {median / base:11.2f}")


if __name__ == "__main__":
    main()
