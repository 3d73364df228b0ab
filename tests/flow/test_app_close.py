"""Closing an App while a handler runs: whatever order its parts were built in, nothing is cut from under it."""
import threading
import time

from core.broker import event_message
from doppel.app import App
from doppel.config import parse_config
from schemas.envelope import Event
from tests.harness import make_function


def worker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name in ("doppel-worker-watchdog", "doppel-lease-renewer")}


def test_close_waits_for_the_running_handler_then_stops_the_workers_threads(tmp_path):
    # Given an embedded App whose ledger was built before its broker, and a handler in the middle of an event
    before = worker_threads()
    app = App(parse_config({"state_dir": str(tmp_path)}, None), role="test")
    app.ledger  # noqa: B018 - built first: closing in the order parts were built would close it first
    inside, finish = threading.Event(), threading.Event()

    def slow(event, deps):
        inside.set()
        finish.wait(5)
        return []
    worker = app.worker([make_function("slow-close", "env.requested", slow)])
    worker.start()
    app.broker.start()
    event = Event(type="env.requested", source="test", data={"env": "close-test", "production": "shop"})
    app.broker.publish([event_message(event)])
    assert inside.wait(5)

    # When the App is closed meanwhile
    closer = threading.Thread(target=app.close)
    closer.start()
    time.sleep(0.2)
    finish.set()
    closer.join(15)

    # Then the handler finished and its completion is in the ledger, and the worker's threads are gone
    assert not closer.is_alive()
    (entry,) = app.ledger.entries(event_ids=[event.id])
    assert entry.status == "done"
    deadline = time.monotonic() + 5
    while worker_threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_threads() - before == set()
