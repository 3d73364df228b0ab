"""A worker process serving test functions, for tests that kill or restart things.

    python -m tests.support.worker_process EFFECT_FILE FUNCTION[,FUNCTION] [--lease S] [--prefetch N]

Uses DOPPEL_AMQP_URL and DOPPEL_DB_URL like `doppel worker`. The test functions
append one line per run to EFFECT_FILE, so a test can count effects: a function
that ran twice for one event shows up twice.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from types import SimpleNamespace

from doppel.app import App
from doppel.config import parse_config


def effect(path: str, line: str) -> None:
    # O_APPEND writes of one short line are atomic, so concurrent runs never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def build(name: str, effect_file: str):
    if name == "count":
        def handle(event, deps):
            effect(effect_file, f"ran {event.id}")
            return []
        return SimpleNamespace(NAME="count", CONSUMES="env.requested", EMITS=(), handle=handle)
    if name == "slow":
        def handle(event, deps):
            effect(effect_file, f"started {event.id} pid {os.getpid()}")
            time.sleep(float(event.data.get("owner", "4")))
            effect(effect_file, f"done {event.id} pid {os.getpid()}")
            return []
        return SimpleNamespace(NAME="slow", CONSUMES="env.requested", EMITS=(), handle=handle)
    raise SystemExit(f"unknown test function {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("effect_file")
    parser.add_argument("functions")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--prefetch", type=int, default=32)
    args = parser.parse_args()
    config = parse_config({"bus": {"lease": args.lease, "prefetch": args.prefetch,
                                   "retry": {"attempts": 3, "first_delay": "500ms"}}}, None)
    app = App(config, role="worker")
    worker = app.worker([build(n, args.effect_file) for n in args.functions.split(",")])
    worker.start()
    effect(args.effect_file, f"ready pid {os.getpid()}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    app.close()  # stops the worker too, after the handlers it is running


if __name__ == "__main__":
    main()
