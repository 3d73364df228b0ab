"""What the gateway's OpenAPI 3 document says, as marshmallow schemas: the answers of each route, and the
CloudEvent whose `data` is one of the bus's own event schemas (schemas/events.py), registered by name.

flask-smorest turns these into `/openapi.json`; nothing of the document is written by hand.
"""
from __future__ import annotations

import copy

from marshmallow import INCLUDE, Schema, fields

from gateway.aodh import PAYLOAD
from schemas.events import SCHEMAS, MonitorAlert

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "the value of the variable named in gateway.events.token_env"},
    "basic": {"type": "http", "scheme": "basic",
              "description": "for a browser: any user name, the gateway's token as password"},
    "slackSignature": {"type": "apiKey", "in": "header", "name": "X-Slack-Signature",
                       "description": "Slack request signing v0, with X-Slack-Request-Timestamp"},
    "keystoneToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                      "description": "a Keystone token (Aodh's trust+http actions), checked with Keystone"},
}
# The statuses a request may get before a route sees it (waitress's and Flask's refusals), on every route.
FRAMING_STATUSES = {400: "the request cannot be read: its framing, JSON or fields (`error` says which)",
                    408: "the request paused halfway", 411: "a body without a length",
                    413: "a body over gateway.max_body", 414: "a request line over 64 KiB",
                    431: "over 100 headers, or too long", 505: "not HTTP/1.x"}


class Problem(Schema):
    """Every refusal: what went wrong and what to do about it."""
    error = fields.String(required=True, metadata={"description": "what went wrong"})
    fix = fields.String(metadata={"description": "what to do about it"})
    errors = fields.Dict(metadata={"description": "validation errors, by field"})
    field = fields.String(metadata={"description": "the attribute that is too long or cannot be sent"})
    bytes = fields.Integer(metadata={"description": "its length in bytes"})
    limit = fields.Integer(metadata={"description": "the most it may be"})


class Accepted(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    source = fields.String()


class CloudEvent(Schema):
    """A CloudEvent 1.0 in structured mode, as Doppel reads it. Each `type` has its own variant in the
    document (`CloudEvent.<type>`), whose `data` is that type's schema on the bus."""
    specversion = fields.String(required=True, metadata={"enum": ["1.0"]})
    id = fields.String(required=True, metadata={"maxLength": 255, "minLength": 1})
    source = fields.String(required=True, metadata={"maxLength": 255, "minLength": 1})
    type = fields.String(required=True, metadata={"enum": sorted(SCHEMAS)})
    time = fields.DateTime(metadata={"description": "RFC 3339"})
    subject = fields.String(metadata={"maxLength": 255})
    correlationid = fields.String(metadata={"maxLength": 255, "description": "joins an existing chain"})
    datacontenttype = fields.String(metadata={"enum": ["application/json"]})
    data = fields.Dict(required=True)


def _nullable(schema_class: type[Schema], name: str, only: tuple[str, ...]) -> type[Schema]:
    """The fields `only` of `schema_class`, each optional one also taking null, as a sender that writes null
    for what it does not know sends it (the gateway drops those before validating)."""
    declared = {}
    for field_name, field in schema_class._declared_fields.items():
        if field_name not in only:
            continue
        field = copy.copy(field)
        field.allow_none = field.allow_none or not field.required
        declared[field_name] = field
    return type(name, (Schema,), {**declared, "Meta": type("Meta", (), {"unknown": INCLUDE})})


# Aodh's REST notifier payload: monitor.alert's own fields, with null for what Aodh does not know.
AodhNotification = _nullable(MonitorAlert, "AodhNotification", PAYLOAD)


class SlashForm(Schema):
    """A slash command as Slack and Mattermost post it (form fields; they send more, which is ignored)."""

    class Meta:
        unknown = INCLUDE

    text = fields.String(metadata={"description": "the words after /doppel"})
    user_id = fields.String()
    user_name = fields.String()
    channel_id = fields.String()
    team_id = fields.String()
    command = fields.String()
    response_url = fields.String()
    token = fields.String(metadata={"description": "Mattermost: the slash command's token"})


class SlackInteraction(Schema):
    """Slack's interactivity request: the form field `payload`, a JSON block_actions document."""
    payload = fields.String(required=True)


class SlashAnswer(Schema):
    response_type = fields.String(required=True, metadata={"enum": ["ephemeral", "in_channel"]})
    text = fields.String(required=True)
    blocks = fields.List(fields.Dict(), metadata={"description": "Slack Block Kit: a DR ask's Approve button"})


class Transition(Schema):
    from_ = fields.String(data_key="from", allow_none=True)
    to = fields.String(required=True)
    at = fields.String(required=True)
    reason = fields.String(allow_none=True)


class EnvStatus(Schema):
    name = fields.String(required=True)
    state = fields.String(required=True)
    production = fields.String(required=True)
    owner = fields.String(allow_none=True)
    data_version = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)
    endpoints = fields.Dict(required=True)
    reason = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    request = fields.String(required=True)


class EnvDetail(EnvStatus):
    history = fields.List(fields.Nested(Transition), required=True)


class EnvList(Schema):
    environments = fields.List(fields.Nested(EnvStatus), required=True)


class Check(Schema):
    ok = fields.Boolean(required=True)
    seconds = fields.Float()
    error = fields.String()


class Health(Schema):
    ok = fields.Boolean(required=True)
    broker = fields.Dict(required=True)
    publisher = fields.Dict(required=True)
    database = fields.Dict(required=True)
    bus = fields.String(required=True, metadata={"enum": ["embedded", "rabbitmq"]})


def register_event_schemas(api) -> None:
    """Each event data schema of the bus as a component, under its class's name, tolerant of unknown fields as
    the gateway reads them (schemas/events.py, validate_in); and one CloudEvent variant per type."""
    for schema_class in sorted(set(SCHEMAS.values()), key=lambda c: c.__name__):
        api.spec.components.schema(schema_class.__name__, schema=schema_class(unknown=INCLUDE))
    api.spec.components.schema("CloudEvent", schema=CloudEvent)
    for event_type, schema_class in sorted(SCHEMAS.items()):
        api.spec.components.schema(f"CloudEvent.{event_type}", component={"allOf": [
            _ref("CloudEvent"),
            {"type": "object", "properties": {"type": {"type": "string", "enum": [event_type]},
                                              "data": _ref(schema_class.__name__)}}]})


def event_body() -> dict:
    """The schema of POST /events' body: one of the CloudEvent variants, told apart by `type`."""
    return {"oneOf": [_ref(f"CloudEvent.{t}") for t in sorted(SCHEMAS)],
            "discriminator": {"propertyName": "type",
                              "mapping": {t: f"#/components/schemas/CloudEvent.{t}" for t in sorted(SCHEMAS)}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}
