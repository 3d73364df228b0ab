"""One marshmallow schema per event type: what `data` holds for each `type` on the bus.

Tolerant on the way in (unknown fields are kept, so an older worker passes a newer
producer's fields along), strict on the way out (a function that emits a field no
schema knows is a bug, caught before it reaches the bus).
"""
from __future__ import annotations

import math
import threading

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

ENV_NAME = validate.Regexp(
    r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$",
    error="must be 2-40 characters of lower-case letters, digits and '-', starting with a letter",
)
# The same rule as a production's name under `productions:` (schemas/production.py).
PRODUCTION_NAME = validate.Regexp(
    r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$",
    error="must be a production's name: 2-40 characters of lower-case letters, digits and '-', starting with a letter",
)
ALARM_STATES = ("ok", "alarm", "insufficient data")

# Bounds on what a person or a system sends. The gateway, chat and the CLI refuse more at the door, and a worker
# parks it as invalid at once: a 5 MB owner or a TTL no database column holds never reaches a handler.
TTL_CEILING = 10 * 365 * 86400  # ten years, in seconds: the most any `environments.max_ttl` may allow
SHORT = 128        # an owner, a data version, a role, a severity, a step's name
IDENTIFIER = 255   # an id: a backup's, an alarm's, a job's (an AMQP short string's length)
REFERENCE = 1024   # what names another event: a request (its source/id), a cause
URL = 2048         # a chat command's response URL
TEXT = 4000        # a reason, a notification: a paragraph, not a log file


def Text(limit: int, **kwargs) -> fields.String:
    """A string of at most `limit` characters."""
    return fields.String(validate=validate.Length(max=limit, error=f"must be at most {limit} characters"),
                         **kwargs)


class Clipped(fields.String):
    """Text Doppel writes from what went wrong (an exception's message), bounded like any text on the way
    in; on the way out `clip_out` shortens it instead, so a long error never stops its `*.failed`."""

    def __init__(self, limit: int, **kwargs):
        super().__init__(validate=validate.Length(max=limit, error=f"must be at most {limit} characters"),
                         **kwargs)
        self.limit = limit


class EventData(Schema):
    """Base of every event's data. `validate_in`/`validate_out` choose the unknown-field policy."""


class Timed(EventData):
    # Set by the scheduler on the events it emits.
    job = Text(IDENTIFIER)
    scheduled_for = Text(SHORT)
    late_seconds = fields.Float()


class EnvRequested(EventData):
    env = fields.String(required=True, validate=ENV_NAME)
    production = fields.String(required=True, validate=PRODUCTION_NAME)
    # At most TTL_CEILING here; the `snapshot` function holds it to the configured environments.max_ttl.
    ttl_seconds = fields.Integer(validate=validate.Range(
        min=1, max=TTL_CEILING, error="must be between {min} second and {max} seconds (ten years); "
                                      "environments.max_ttl in doppel.yaml sets the most this Doppel allows"),
        allow_none=True)
    data_version = Text(SHORT, load_default="latest")
    owner = Text(SHORT)
    role = Text(SHORT)
    reply_to = Text(URL)  # where notify answers: a chat channel, a response URL


class SnapshotDone(EventData):
    env = Text(IDENTIFIER, required=True)
    request = Text(REFERENCE, required=True)  # the env.requested that started the chain (source/id)
    production = Text(IDENTIFIER, required=True)
    snapshot = fields.Dict(required=True)  # the driver's Snapshot, as a dict


class StackReady(EventData):
    env = Text(IDENTIFIER, required=True)
    request = Text(REFERENCE, required=True)
    stack = fields.Dict(required=True)  # the driver's Stack: id, name, status, outputs


class EnvReady(EventData):
    env = Text(IDENTIFIER, required=True)
    request = Text(REFERENCE)
    endpoints = fields.Dict(required=True)
    expires_at = Text(SHORT, allow_none=True)


class EnvExpired(Timed):
    env = fields.String(required=True, validate=ENV_NAME)
    reason = fields.String(load_default="ttl", validate=validate.OneOf(["ttl", "manual"]))


class EnvExpiring(EventData):
    """The warning before an environment's end (environments.warn_before), once per end it is given."""
    env = Text(IDENTIFIER, required=True)
    expires_at = Text(SHORT, required=True)
    owner = Text(SHORT, allow_none=True)


class EnvDeleted(EventData):
    env = Text(IDENTIFIER, required=True)
    backup_id = Text(IDENTIFIER, allow_none=True)


class Failed(EventData):
    """Every `*.failed`: which step, on what, and why, in words a person can act on."""
    step = Text(SHORT, required=True)
    reason = Clipped(TEXT, required=True)
    env = Text(IDENTIFIER)
    production = Text(IDENTIFIER)
    request = Text(REFERENCE)
    cause_id = Text(REFERENCE)  # the id of the event whose handling failed
    # A request refused before it was registered has no environment to look its requester up by: the
    # response URL of its env.requested travels with the env.failed, for `notify` to answer there.
    reply_to = Text(URL)


class BackupDue(Timed):
    env = fields.String(required=True, validate=ENV_NAME)  # an environment's name, or a production's
    reason = fields.String(load_default="scheduled",
                           validate=validate.OneOf(["scheduled", "expiry", "manual", "failback", "drill"]))
    policy = Text(IDENTIFIER)


class BackupDone(EventData):
    env = Text(IDENTIFIER, required=True)
    backup_id = Text(IDENTIFIER, required=True)
    reason = Text(SHORT, required=True)
    size = fields.Integer()
    sha256 = Text(SHORT)
    policy = Text(IDENTIFIER)


class BackupPruned(EventData):
    env = Text(IDENTIFIER, required=True)
    removed = fields.List(fields.String(), required=True)
    kept = fields.Integer(required=True)


class RestoreRequested(EventData):
    backup_id = Text(IDENTIFIER, required=True)
    # the environment restored into (made if it does not exist)
    env = fields.String(required=True, validate=ENV_NAME)
    # what the environment is a copy of, so it gets its endpoints (default: the backup's own production)
    production = fields.String(validate=PRODUCTION_NAME)
    # for a new environment, as env.requested has them
    ttl_seconds = EnvRequested._declared_fields["ttl_seconds"]
    owner = Text(SHORT)
    reply_to = Text(URL)


class RestoreDone(EventData):
    backup_id = Text(IDENTIFIER, required=True)
    env = Text(IDENTIFIER, required=True)


class SyncDue(Timed):
    production = fields.String(required=True, validate=PRODUCTION_NAME)


class SyncDone(EventData):
    production = Text(IDENTIFIER, required=True)
    backup_id = Text(IDENTIFIER, allow_none=True)
    skipped = Clipped(TEXT)  # why nothing was copied, when nothing was


class DrillDue(Timed):
    production = fields.String(required=True, validate=PRODUCTION_NAME)


class DrillDone(EventData):
    production = Text(IDENTIFIER, required=True)
    backup_id = Text(IDENTIFIER, required=True)
    verified = fields.Boolean(required=True)
    rpo_seconds = fields.Float()
    rto_seconds = fields.Float()


class MonitorAlert(EventData):
    """Aodh's REST notifier payload, field for field, so any monitor can speak it."""
    alarm_id = Text(IDENTIFIER, required=True)
    alarm_name = Text(IDENTIFIER)
    severity = Text(SHORT)
    previous = fields.String(validate=validate.OneOf(ALARM_STATES))
    current = fields.String(required=True, validate=validate.OneOf(ALARM_STATES))
    reason = Text(TEXT)
    reason_data = fields.Dict()
    production = fields.String(validate=PRODUCTION_NAME)


class FailoverConfirmed(EventData):
    production = fields.String(required=True, validate=PRODUCTION_NAME)
    alarm_id = Text(IDENTIFIER)
    requested_by = Text(SHORT)  # from chat: the operator who asked ...
    approved_by = Text(SHORT)   # ... and the second one who approved


class FailoverDone(EventData):
    production = Text(IDENTIFIER, required=True)
    backup_id = Text(IDENTIFIER, required=True)
    rpo_seconds = fields.Float(required=True)
    rto_seconds = fields.Float(required=True)
    endpoints = fields.Dict()


class FailbackRequested(EventData):
    production = fields.String(required=True, validate=PRODUCTION_NAME)
    requested_by = Text(SHORT)
    approved_by = Text(SHORT)


class FailbackDone(EventData):
    production = Text(IDENTIFIER, required=True)
    backup_id = Text(IDENTIFIER)


class PollTick(Timed):
    target = Text(IDENTIFIER, load_default="all")


class Notification(EventData):
    """What `notify` was asked to say, for the audit trail and chat."""
    text = Clipped(TEXT, required=True)
    env = Text(IDENTIFIER)


SCHEMAS: dict[str, type[EventData]] = {
    "env.requested": EnvRequested,
    "snapshot.done": SnapshotDone,
    "stack.ready": StackReady,
    "env.ready": EnvReady,
    "env.expired": EnvExpired,
    "env.expiring": EnvExpiring,
    "env.deleted": EnvDeleted,
    "env.failed": Failed,
    "backup.due": BackupDue,
    "backup.done": BackupDone,
    "backup.failed": Failed,
    "backup.pruned": BackupPruned,
    "restore.requested": RestoreRequested,
    "restore.done": RestoreDone,
    "restore.failed": Failed,
    "sync.due": SyncDue,
    "sync.done": SyncDone,
    "sync.failed": Failed,
    "drill.due": DrillDue,
    "drill.done": DrillDone,
    "drill.failed": Failed,
    "monitor.alert": MonitorAlert,
    "failover.confirmed": FailoverConfirmed,
    "failover.done": FailoverDone,
    "failover.failed": Failed,
    "failback.requested": FailbackRequested,
    "failback.done": FailbackDone,
    "failback.failed": Failed,
    "poll.tick": PollTick,
    "notify.sent": Notification,
}


class UnknownEventType(ValueError):
    pass


_built = threading.local()


def _schema(event_type: str, unknown) -> Schema:
    """The type's schema, built once per thread: building one costs more than validating with it,
    and per thread no two callers ever share a marshmallow schema instance."""
    schema_class = SCHEMAS.get(event_type)
    if schema_class is None:
        known = ", ".join(sorted(SCHEMAS))
        raise UnknownEventType(f"unknown event type {event_type!r}; known types: {known}")
    cache = _built.__dict__
    schema = cache.get((schema_class, unknown))
    if schema is None:
        schema = cache[(schema_class, unknown)] = schema_class(unknown=unknown)
    return schema


def validate_in(event_type: str, data: dict) -> dict:
    """Errors of an incoming event's data ({} when valid); unknown fields are tolerated.

    Most events are valid: a plain-Python check built from the schema says so first (a worker reads
    thousands a second, and marshmallow's validate costs several times more); anything it does not
    accept at once goes to marshmallow, which gives the errors."""
    schema = _schema(event_type, INCLUDE)
    accepts = _QUICK_CHECKS.get(type(schema))
    if accepts is not None and accepts(data):
        return {}
    return schema.validate(data)


def _quick_check(schema_class: type[EventData]):
    """A function that returns True only for data marshmallow would accept unchanged (unknown fields
    included); None when the schema uses a field, option or validator this does not know.

    Conservative on purpose: `False` means "ask marshmallow", never "invalid" (marshmallow also takes
    numbers written as strings, bytes for strings, and so on; this takes only the plain JSON types)."""
    if any(schema_class._hooks.values()):
        return None
    checks = []
    for name, field in schema_class._declared_fields.items():
        kind = _QUICK_TYPES.get(type(field))
        if kind is None or field.data_key not in (None, name) or field.attribute not in (None, name):
            return None
        if isinstance(field, fields.Dict) and (field.key_field is not None or field.value_field is not None):
            return None
        if isinstance(field, fields.List) and (type(field.inner) is not fields.String or field.inner.validators
                                               or field.inner.allow_none):
            return None
        validators = [_quick_validator(v) for v in field.validators]
        if None in validators:
            return None
        checks.append((name, field.required, field.allow_none, _all_of(kind, validators)))

    def accepts(data: dict) -> bool:
        for name, required, allow_none, check in checks:
            value = data.get(name, _ABSENT)
            if value is _ABSENT:
                if required:
                    return False
            elif value is None:
                if not allow_none:
                    return False
            elif not check(value):
                return False
        return True
    return accepts


def _all_of(kind, validators: list):
    """One function checking the type, then each validator (it runs for every field of every event read: no
    generator for the usual single validator; every schema's fields have at most one today)."""
    if not validators:
        return kind
    if len(validators) == 1:
        (only,) = validators
        return lambda value: kind(value) and only(value)
    return lambda value: kind(value) and all(check(value) for check in validators)


def _finite_number(value) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int and -(2 ** 53) <= value <= 2 ** 53


def _quick_validator(validator):
    if type(validator) is validate.Regexp:
        return lambda value, match=validator.regex.match: match(value) is not None
    if type(validator) is validate.OneOf:
        return lambda value, choices=validator.choices: value in choices
    if type(validator) is validate.Length:
        low, high, equal = validator.min, validator.max, validator.equal
        return lambda value: ((equal is None or len(value) == equal) and (low is None or len(value) >= low)
                              and (high is None or len(value) <= high))
    if type(validator) is validate.Range:
        low, high = validator.min, validator.max
        low_in, high_in = validator.min_inclusive, validator.max_inclusive
        return lambda value: ((low is None or (value >= low if low_in else value > low))
                              and (high is None or (value <= high if high_in else value < high)))
    return None


_ABSENT = object()
_QUICK_TYPES = {
    fields.String: lambda value: type(value) is str,
    Clipped: lambda value: type(value) is str,
    fields.Integer: lambda value: type(value) is int,
    fields.Float: _finite_number,
    fields.Boolean: lambda value: type(value) is bool,
    fields.Dict: lambda value: type(value) is dict,
    fields.List: lambda value: type(value) is list and all(type(item) is str for item in value),
}
_QUICK_CHECKS = {schema_class: check for schema_class in set(SCHEMAS.values())
                 if (check := _quick_check(schema_class)) is not None}


def validate_out(event_type: str, data: dict) -> None:
    """Raise ValidationError unless `data` is exactly what the type's schema allows."""
    errors = _schema(event_type, RAISE).validate(data)
    if errors:
        raise ValidationError(errors)


def clip_out(event_type: str, data: dict) -> dict:
    """`data` with each over-long `Clipped` text shortened to its bound (an ellipsis marks the cut)."""
    clipped = data
    for name, limit in _CLIPPED.get(event_type, ()):
        value = data.get(name)
        if isinstance(value, str) and len(value) > limit:
            clipped = clipped if clipped is not data else dict(data)
            clipped[name] = value[:limit - 1] + "\u2026"
    return clipped


_CLIPPED = {event_type: tuple((name, field.limit) for name, field in schema_class._declared_fields.items()
                              if isinstance(field, Clipped))
            for event_type, schema_class in SCHEMAS.items()}


def load_in(event_type: str, data: dict) -> dict:
    """Incoming data with the schema's defaults filled in, unknown fields kept."""
    loaded = _schema(event_type, INCLUDE).load(data)
    return loaded
