"""The CloudEvents 1.0 envelope, structured JSON mode, as it travels on the bus and over HTTP.

`id` + `source` is the de-duplication key, `type` the routing key, and the
`correlationid` extension ties every event of one chain together.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
# CloudEvents: extension attribute names are lower-case letters and digits only.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CORE = {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject", "data", "data_base64"}


class EnvelopeError(ValueError):
    """The bytes are not a CloudEvent Doppel can read; never worth a retry."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the spec's examples and every SDK write it."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"time {text!r} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise EnvelopeError(f"time {text!r} has no UTC offset")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    data: dict
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utcnow)
    correlationid: str = ""
    subject: str | None = None
    extensions: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.correlationid:
            # The first event of a chain starts it: its own id becomes the chain's id.
            object.__setattr__(self, "correlationid", self.id)

    def to_dict(self) -> dict:
        body = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": format_time(self.time),
            "datacontenttype": "application/json",
            "correlationid": self.correlationid,
            "data": self.data,
        }
        if self.subject is not None:
            body["subject"] = self.subject
        body.update(self.extensions)
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()

    @classmethod
    def from_dict(cls, body: dict) -> "Event":
        if not isinstance(body, dict):
            raise EnvelopeError("a CloudEvent is a JSON object")
        if body.get("specversion") != SPECVERSION:
            raise EnvelopeError(f"specversion must be {SPECVERSION!r}, got {body.get('specversion')!r}")
        for name in ("id", "source", "type"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise EnvelopeError(f"required attribute {name!r} is missing or empty")
        data = body.get("data", {})
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise EnvelopeError("data must be a JSON object")
        extensions = {}
        for name, value in body.items():
            if name in _CORE or name == "correlationid":
                continue
            if not _EXTENSION_NAME.match(name):
                raise EnvelopeError(f"attribute name {name!r} is not a valid CloudEvents extension name")
            extensions[name] = value
        return cls(
            type=body["type"],
            source=body["source"],
            id=body["id"],
            data=data,
            time=parse_time(body["time"]) if body.get("time") else utcnow(),
            correlationid=str(body.get("correlationid") or ""),
            subject=body.get("subject"),
            extensions=extensions,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Event":
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnvelopeError(f"body is not JSON: {exc}") from exc
        return cls.from_dict(body)


# Binary content mode: attributes in headers. The RabbitMQ binding writes `ce-`,
# the AMQP binding `cloudEvents:` (or `cloudEvents_`).
_BINARY_PREFIXES = ("ce-", "cloudEvents:", "cloudEvents_")


def from_amqp(body: bytes, headers: dict | None, content_type: str | None = None) -> Event:
    """Read an event in structured mode (the body) or binary mode (the headers, data in the body)."""
    headers = headers or {}
    attributes = {}
    for name, value in headers.items():
        for prefix in _BINARY_PREFIXES:
            if name.startswith(prefix):
                attributes[name[len(prefix):].lower()] = value.decode() if isinstance(value, bytes) else value
    if "specversion" not in attributes:
        return Event.from_json(body)
    if content_type and not content_type.startswith("application/json") and not content_type.endswith("+json"):
        raise EnvelopeError(f"binary-mode data of content type {content_type!r}; Doppel reads JSON data only")
    try:
        attributes["data"] = json.loads(body) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"binary-mode data is not JSON: {exc}") from exc
    return Event.from_dict(attributes)


def derived_id(*parts: str) -> str:
    """A stable event id from stable inputs, so a re-run emits the same ids and is de-duplicated."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "doppel:" + "/".join(parts)))
