"""The `schedules:` section of doppel.yaml: the timed events the scheduler emits.

    schedules:
      - {id: nightly-backup, cron: "0 2 * * *", timezone: Europe/Paris, type: backup.due, data: {env: shop}}
      - {id: poll, every: 30s, type: poll.tick}

Each entry is checked at start-up with the code that will build its trigger and the
schema of its event type, and every error names the job, so a typo fails the
process that reads the file instead of a fire at 02:00.
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.events import UnknownEventType, validate_in
from schemas.fields import Duration

JOB_ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
    error="must be 1-63 letters, digits, '.', '_' or '-' (no ':'; 'expiry:' ids are the scheduler's own)",
)
TAG = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", error="must be letters, digits, '.', '_' or '-'")
SET_BY_SCHEDULER = ("job", "scheduled_for", "late_seconds")  # the Timed fields, written on each fire
DEFAULT_MISFIRE_GRACE = 3600.0


class ScheduleSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=JOB_ID)
    cron = fields.String()
    every = Duration()
    timezone = fields.String(load_default="UTC")
    type = fields.String(required=True)
    data = fields.Dict(keys=fields.String(), load_default=dict)
    tags = fields.List(fields.String(validate=TAG), load_default=list)
    # A fire missed (every replica down) is still emitted, once and marked late, up to this long after its time.
    misfire_grace = Duration(load_default=DEFAULT_MISFIRE_GRACE)

    @validates_schema
    def _check(self, entry, **kwargs):
        """Trigger, time zone, event type and data, each error naming the job."""
        job = f"job {entry.get('id', '?')!r}"
        errors: dict[str, list[str]] = {}
        errors.update(_trigger_errors(job, entry))
        errors.update(_data_errors(job, entry))
        if errors:
            raise ValidationError(errors)


def _trigger_errors(job: str, entry: dict) -> dict:
    from schemas.triggers import cron_trigger, interval_trigger, zone
    has_cron, has_every = "cron" in entry, "every" in entry
    if has_cron == has_every:
        return {"cron": [f"{job}: give exactly one of cron (e.g. '0 2 * * *') or every (e.g. 30s)"]}
    try:
        zone(entry["timezone"])
    except ValueError as exc:
        return {"timezone": [f"{job}: {exc}"]}
    try:
        if has_cron:
            cron_trigger(entry["cron"], entry["timezone"])
        else:
            interval_trigger(entry["every"])
    except ValueError as exc:
        return {"cron" if has_cron else "every": [f"{job}: {exc}"]}
    return {}


def _data_errors(job: str, entry: dict) -> dict:
    if "type" not in entry:
        return {}
    data = entry.get("data", {})
    reserved = [name for name in SET_BY_SCHEDULER if name in data]
    if reserved:
        return {"data": [f"{job}: {', '.join(reserved)} is set by the scheduler on each fire; remove it"]}
    try:
        problems = validate_in(entry["type"], data)
    except UnknownEventType as exc:
        return {"type": [f"{job}: {exc}"]}
    if problems:
        detail = "; ".join(f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                           for name, msgs in problems.items())
        return {"data": [f"{job}: data does not fit {entry['type']}: {detail}"]}
    return {}


def _unique_ids(entries: list) -> None:
    seen, twice = set(), []
    for entry in entries:
        if entry["id"] in seen:
            twice.append(entry["id"])
        seen.add(entry["id"])
    if twice:
        raise ValidationError(f"job id(s) {', '.join(map(repr, twice))} used more than once; job ids must be unique")


class _ScheduleList(fields.List):
    """A list whose errors are keyed by job id instead of position: `schedules.nightly-backup.cron`."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            raise ValidationError(_keyed_by_job(exc.messages, value), valid_data=exc.valid_data) from None


def _keyed_by_job(messages, entries):
    if not isinstance(messages, dict) or not isinstance(entries, list):
        return messages
    ids = [e.get("id") if isinstance(e, dict) else None for e in entries]
    keyed = {}
    for index, detail in messages.items():
        name = ids[index] if isinstance(index, int) and index < len(ids) else None
        unique = isinstance(name, str) and name and ids.count(name) == 1
        keyed[name if unique else index] = detail
    return keyed


def Schedules() -> fields.List:
    """The `schedules:` field of the config schema."""
    return _ScheduleList(fields.Nested(ScheduleSchema), load_default=list, validate=_unique_ids)
