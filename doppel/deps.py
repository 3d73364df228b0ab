"""What a function is handed: everything it may touch, built once at start-up.

`emit` is bound per event by the worker, so what a function emits carries its
chain's correlation id and a deterministic id (a re-run emits the same ids, and
the next function's ledger absorbs the duplicate).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from doppel.errors import PermanentError
from marshmallow import ValidationError
from schemas.envelope import Event, derived_id
from schemas.events import clip_out, validate_out


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Deps:
    config: Any = None
    cloud: Any = None
    registry: Any = None
    audit: Any = None
    backups: Any = None
    scheduler: Any = None
    clock: Callable[[], datetime] = _utcnow
    extra: dict = field(default_factory=dict)
    source: str = "doppel"
    _cause: Event | None = None
    _emitter: str = ""
    _counter: Any = None

    def for_event(self, event: Event, function: str, key: str) -> "Deps":
        # A shallow copy with four fields set: dataclasses.replace (or copy.copy) costs ten times as much, and
        # this runs for every delivery.
        bound = object.__new__(Deps)
        bound.__dict__.update(self.__dict__)
        bound._cause, bound._emitter, bound._counter = event, f"{function}:{key}", itertools.count()
        bound.source = f"doppel/{function}"
        return bound

    def emit(self, event_type: str, **data) -> Event:
        """An event to publish once the handler returns it; validated strictly here (an over-long reason is
        shortened first, so the `*.failed` that carries it is still sent)."""
        data = clip_out(event_type, {k: v for k, v in data.items() if v is not None})
        try:
            validate_out(event_type, data)
        except ValidationError as exc:
            raise PermanentError(f"{self._emitter or 'caller'} built an invalid {event_type}: {exc.messages}") from exc
        cause = self._cause
        if cause is None:
            return Event(type=event_type, source=self.source, data=data, time=self.clock())
        index = next(self._counter)
        return Event(type=event_type, source=self.source, data=data, time=self.clock(),
                     id=derived_id(self._emitter, cause.id, event_type, str(index)),
                     correlationid=cause.correlationid)
