"""Field types shared by the config and event schemas."""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text) -> float:
    """'90s', '15m', '8h', '2d', '500ms' or a bare number of seconds -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 15m, 8h or 2d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Duration(fields.Field):
    """A duration in seconds, written as '30s', '15m', '8h', '2d' or a number of seconds."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if seconds <= 0:
            raise ValidationError("must be longer than zero")
        return seconds

    def _serialize(self, value, attr, obj, **kwargs):
        return value
