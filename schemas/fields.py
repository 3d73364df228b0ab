"""Field types shared by the config and event schemas."""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text, *, unit_required: bool = False) -> float:
    """'90s', '15m', '8h', '2d', '500ms' -> seconds.

    With `unit_required` (the command line), text needs its unit: `--ttl 30` could mean
    seconds, minutes or days, so it is refused with what to write. A YAML number
    (`timeout: 5`) is seconds, and so is a bare number where a unit is not required.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{str(text)[:40]!r} is not a duration; write e.g. 30s, 15m, 8h or 2d")
    if match.group(2) is None and unit_required:
        raise ValueError(f"{str(text).strip()!r} has no unit; write e.g. {str(text).strip()}s, "
                         f"{str(text).strip()}m or {str(text).strip()}h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Duration(fields.Field):
    """A duration in seconds, written as '30s', '15m', '8h', '2d', or a YAML number of seconds."""

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
