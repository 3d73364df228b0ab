"""Which chain a log line belongs to: the event being handled, its function and environment.

The worker opens a `chain_context` around each handler; every line logged on that
thread until it closes carries the event's correlation id, id, function and
environment (or production), as record attributes that a formatter can print
(`doppel --log-format json`, doppel/logs.py). Lines logged outside a handler
carry none.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar

FIELDS = ("correlation_id", "event_id", "event_type", "function", "env")

_current: ContextVar[dict | None] = ContextVar("doppel_chain", default=None)


class chain_context:
    """Mark the lines logged on this thread as `event`'s, handled by `function`, until `close()`."""

    def __init__(self, event, function: str):
        data = event.data if isinstance(event.data, dict) else {}
        self._token = _current.set({"correlation_id": event.correlationid, "event_id": event.id,
                                    "event_type": event.type, "function": function,
                                    "env": data.get("env") or data.get("production")})

    def close(self) -> None:
        _current.reset(self._token)

    def __enter__(self) -> "chain_context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def current() -> dict:
    """The chain fields of the line being logged now ({} outside a handler)."""
    return _current.get() or {}


class ChainFilter(logging.Filter):
    """Puts the chain fields on every record (None outside a handler), for the formatter to print."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name))
        return True
