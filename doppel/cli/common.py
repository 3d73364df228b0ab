"""What the command groups share: the error a command exits with, and building an event from the command line."""
from __future__ import annotations

from schemas.envelope import EnvelopeError, Event, check_attributes
from schemas.events import UnknownEventType, validate_in


class CommandError(Exception):
    """A mistake a person made on the command line, or a refusal: printed as `doppel: MESSAGE`, exit `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def build_event(event_type: str, data: dict, *, source=None, event_id=None, correlation=None) -> Event:
    """A valid event of `event_type`, or CommandError(2) saying which field is wrong."""
    try:
        errors = validate_in(event_type, data)
    except UnknownEventType as exc:
        raise CommandError(str(exc), 2) from None
    if errors:
        lines = "; ".join(f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                          for field, msgs in errors.items())
        raise CommandError(f"{event_type} is invalid: {lines}", 2)
    kwargs = {"id": event_id} if event_id else {}
    event = Event(type=event_type, source=source or "doppel/cli", data=data, correlationid=correlation or "", **kwargs)
    try:
        check_attributes(event)  # what a reader would refuse is not sent
    except EnvelopeError as exc:
        option = {"id": "--id ", "source": "--source ", "correlationid": "--correlation "}.get(
            getattr(exc, "name", None), "")
        raise CommandError(f"{option}refused: {exc}", 2) from None
    return event
