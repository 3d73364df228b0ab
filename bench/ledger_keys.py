"""The worker's ledger on SQLite with random event ids against time-ordered ones, in the same run.

    python bench/ledger_keys.py [--events 20000] [--batch 100] [--rounds 3] [--grown 0]

What a worker's batch does to its ledger, with Doppel's own Ledger: claim the
batch's keys (`claim_many`, each claim keeping its event's 1 KB of JSON), then
record them done (`complete_many`), batch after batch, on a fresh SQLite file
per run (WAL, as `make_engine` sets it). The keys are `source:id`, as the
worker's default key: "random" gives each event a uuid4 id (what Doppel made
before session 14, and what a CloudEvents client sends), "time-ordered" the id
Doppel makes now (`new_event_id`, a UUIDv7). `--grown N` claims and completes N
events first (untimed), for a ledger that has been in use.

Prints the CPU time of this process per event for each (SQLite's work and the
ledger's Python, one thread; the events' JSON is made before the timing) and
the ratio random / time-ordered, median of rounds; rounds alternate which goes
first.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bus_throughput import BODY_EVENT  # noqa: E402

from bus.ledger import Claim, Ledger  # noqa: E402
from core.db import make_engine  # noqa: E402
from doppel import migrations  # noqa: E402
from schemas.envelope import Event, new_event_id  # noqa: E402

KINDS = {"random": lambda: str(uuid.uuid4()), "time-ordered": new_event_id}


def events(make_id, count: int) -> list[Event]:
    """`count` of the bus bench's env.requested events (about 1 KB of JSON), each with an id from `make_id` (and
    its own chain, as a new event starts one)."""
    return [dataclasses.replace(BODY_EVENT(n), id=make_id(), correlationid="") for n in range(count)]


def prepared(batches: list[list[Event]], owner: str) -> list[tuple]:
    """Each batch's claims, bodies and completions, made before the timing (a worker has the body at hand)."""
    return [([("noop", f"{e.source}:{e.id}", owner, e) for e in batch], [e.to_json().decode() for e in batch],
             [("noop", f"{e.source}:{e.id}", owner, {"emitted": []}) for e in batch]) for batch in batches]


def run(ledger: Ledger, work: list[tuple]) -> None:
    for claims, bodies, completions in work:
        outcomes = ledger.claim_many(claims, 30.0, bodies)
        if any(outcome is not Claim.RUN for outcome in outcomes):
            raise SystemExit(f"ledger_keys: a new key was not claimed ({set(outcomes)}); the bench is broken")
        ledger.complete_many(completions)


def one(kind: str, count: int, batch: int, grown: int, directory: str) -> float:
    """CPU µs per event for `count` events of `kind` ids, in batches of `batch`."""
    engine = make_engine(f"sqlite:///{directory}/ledger-{kind}-{uuid.uuid4().hex[:6]}.db")
    migrations.upgrade(engine)
    ledger = Ledger(engine)
    try:
        make_id = KINDS[kind]
        if grown:
            first = events(make_id, grown)
            run(ledger, prepared([first[i:i + batch] for i in range(0, grown, batch)], "bench.grow"))
        timed = events(make_id, count)
        work = prepared([timed[i:i + batch] for i in range(0, count, batch)], "bench")
        started = time.process_time()
        run(ledger, work)
        return (time.process_time() - started) / count * 1e6
    finally:
        ledger.close()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100, help="events per claim and per completion (100)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grown", type=int, default=0, help="events in the ledger before the timed ones (0)")
    args = parser.parse_args()
    if min(args.events, args.batch, args.rounds) < 1 or args.grown < 0:
        parser.error("--events, --batch and --rounds must be at least 1, --grown at least 0")
    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="doppel-ledger-bench-") as directory:
        for n in range(args.rounds):
            order = list(KINDS) if n % 2 == 0 else list(reversed(KINDS))
            for kind in order:
                results[kind].append(one(kind, args.events, args.batch, args.grown, directory))
            print(f"  round {n + 1}: " + ", ".join(f"{kind} {results[kind][-1]:.1f} µs" for kind in KINDS),
                  flush=True)
    medians = {kind: statistics.median(values) for kind, values in results.items()}
    for kind, value in medians.items():
        print(f"{kind:13s} {value:6.1f} µs of CPU per event (claim + complete), median of {args.rounds}")
    print(f"ratio random / time-ordered: {medians['random'] / medians['time-ordered']:.2f} "
          f"({args.events} events in batches of {args.batch}, {args.grown} in the ledger before)")


if __name__ == "__main__":
    main()
