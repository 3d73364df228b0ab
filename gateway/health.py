"""`GET /health`: does the broker answer, does publishing work, does the database answer. Each check is timed
and named.

`publisher` is the broker's own account of its publish channel (RabbitBroker.publisher_state): unhealthy while
the channel is gone or not yet confirming, or while a message has waited too long for its confirm. A gateway
that answers 202 only on a confirm is only healthy when confirms come back.
"""
from __future__ import annotations

import inspect
import time
from typing import Callable

from sqlalchemy import text

from bus import topology

CHECK_TIMEOUT_S = 2.0


def takes_timeout(method: Callable) -> bool:
    """Whether a broker verb takes a time limit (RabbitMQ's do; the in-memory broker answers at once)."""
    return "timeout" in inspect.signature(method).parameters


def _broker(app) -> None:
    """Ask the broker a question it must answer: the depth of the audit function's queue."""
    queue = topology.function_queue("audit")
    if takes_timeout(app.broker.depth):
        app.broker.depth(queue, timeout=CHECK_TIMEOUT_S)
    else:  # the in-memory broker answers at once
        app.broker.depth(queue)


def _publisher(app) -> dict:
    """The broker's account of its publish channel: {"ok": False, "problem": ...} when a publish would not be
    confirmed now."""
    state_of = app.broker.publisher_state
    return state_of(timeout=CHECK_TIMEOUT_S) if takes_timeout(state_of) else state_of()


def _database(app) -> None:
    with app.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def health(app) -> dict:
    """{'ok': bool, 'broker': {...}, 'publisher': {...}, 'database': {...}}.

    An error names the exception class only (no URLs); the publisher's state is the broker's own words and numbers.
    """
    report = {"ok": True}
    for name, check in (("broker", _broker), ("publisher", _publisher), ("database", _database)):
        started = time.monotonic()
        try:
            report[name] = {"ok": True, **(check(app) or {})}
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            report[name] = {"ok": False, "error": type(exc).__name__}
        if not report[name]["ok"]:
            report["ok"] = False
        report[name]["seconds"] = round(time.monotonic() - started, 4)
    report["bus"] = "embedded" if app.embedded else "rabbitmq"
    return report
