"""What the command groups share: the error a command exits with, examples in --help, durations and names
from the command line, and building an event from the command line.

Only the standard library at the top: `doppel --help` imports every command group (and a command its own).
"""
from __future__ import annotations

import argparse


class CommandError(Exception):
    """A mistake a person made on the command line, or a refusal: printed as `doppel: MESSAGE`, exit `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def subcommands(parser: argparse.ArgumentParser, path: str = ""):
    """(path, parser) of every command under `parser`, e.g. ("env create", <parser>)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                here = f"{path} {name}".strip()
                yield here, child
                yield from subcommands(child, here)


def with_examples(sub: argparse._SubParsersAction, examples: dict) -> None:
    """Put each command's examples (EXAMPLES of its module, by command path) at the end of its --help."""
    for name, parser in sub.choices.items():
        for path, child in [(name, parser), *subcommands(parser, name)]:
            if path in examples:
                child.formatter_class = argparse.RawDescriptionHelpFormatter
                child.epilog = ((child.epilog or "").rstrip() + "\n\nExamples:\n" +
                                "\n".join(f"  {line}" for line in examples[path])).lstrip()


def duration(text: str, option: str) -> float:
    """A duration from the command line, in seconds; it needs a unit (30s, 15m, 8h, 2d)."""
    from schemas.fields import parse_duration
    try:
        seconds = parse_duration(text, unit_required=True)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}", 2) from None
    if seconds <= 0:
        raise CommandError(f"{option}: {text!r} must be longer than zero", 2)
    return seconds


def env_name(name: str, option: str = "NAME") -> str:
    """An environment's name, checked as env.requested checks it, before anything is loaded."""
    from marshmallow import ValidationError

    from schemas.events import ENV_NAME
    try:
        ENV_NAME(name)
    except ValidationError as exc:
        raise CommandError(f"{option} {name[:60]!r}: {' '.join(exc.messages)}", 2) from None
    return name


def build_event(event_type: str, data: dict, *, source=None, event_id=None, correlation=None):
    """A valid event of `event_type`, or CommandError(2) saying which field is wrong."""
    from schemas.envelope import EnvelopeError, Event, check_attributes
    from schemas.events import UnknownEventType, validate_in
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
