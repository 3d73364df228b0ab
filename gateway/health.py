"""`GET /health`: does the broker answer, does the database answer. Each check is timed and named."""
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


def _database(app) -> None:
    with app.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def health(app) -> dict:
    """{'ok': bool, 'broker': {...}, 'database': {...}}; an error names the exception class only (no URLs)."""
    report = {"ok": True}
    for name, check in (("broker", _broker), ("database", _database)):
        started = time.monotonic()
        try:
            check(app)
            report[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            report["ok"] = False
            report[name] = {"ok": False, "error": type(exc).__name__}
        report[name]["seconds"] = round(time.monotonic() - started, 4)
    report["bus"] = "embedded" if app.embedded else "rabbitmq"
    return report
