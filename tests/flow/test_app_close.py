"""Closing an App while a handler runs: whatever order its parts were built in, nothing is cut from under it."""
import threading

from core.broker import event_message
from doppel.app import App
from doppel.config import parse_config
from schemas.envelope import Event
from tests.harness import make_function
from tests.support.waiting import wait_for


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

    # When the App is closed meanwhile: the broker stops dispatching (its dispatcher thread ends), and close is
    # then waiting for the handler, which is let go only once close got that far
    closer = threading.Thread(target=app.close)
    closer.start()
    dispatcher = app.broker._dispatcher
    wait_for(lambda: not dispatcher.is_alive(), 10, "the broker to stop dispatching")
    assert closer.is_alive(), "close returned with a handler still running"
    finish.set()
    closer.join(15)

    # Then the handler finished and its completion is in the ledger, and the worker's threads are gone
    assert not closer.is_alive()
    (entry,) = app.ledger.entries(event_ids=[event.id])
    assert entry.status == "done"
    wait_for(lambda: not worker_threads() - before, 5, "the worker's threads to end",
             explain=lambda: str(worker_threads() - before))
