"""The CloudEvents 1.0 envelope, structured JSON mode, as it travels on the bus and over HTTP.

`id` + `source` is the de-duplication key, `type` the routing key, and the
`correlationid` extension ties every event of one chain together.

Reading is strict about what travels further: the attributes that identify an
event are text of at most 255 bytes of UTF-8 (`id` and `correlationid` become
AMQP short strings, `type` is the routing key, and the state keeps all of them
in columns of 255), and every way bytes can fail to be a CloudEvent (not JSON,
not UTF-8, nested too deeply, a number too long to read, an attribute of the
wrong type) is an EnvelopeError, so a reader parks or refuses it with the reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
# CloudEvents: extension attribute names are lower-case letters and digits only.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CORE = {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject", "data",
         "data_base64"}
MAX_ATTRIBUTE_BYTES = 255
# The attributes that identify an event, and why each is bounded.
_BOUNDED = {"id": "it travels as the AMQP message-id", "source": "the de-duplication key and audit trail keep it",
            "type": "it is the AMQP routing key", "correlationid": "it travels as the AMQP correlation-id",
            "subject": "the audit trail keeps it"}


class EnvelopeError(ValueError):
    """The bytes are not a CloudEvent Doppel can read; never worth a retry."""


class AttributeTooLong(EnvelopeError):
    """An attribute over MAX_ATTRIBUTE_BYTES; `name`, `length` and `limit` (bytes) say which and by how much."""

    def __init__(self, name: str, length: int, limit: int = MAX_ATTRIBUTE_BYTES):
        super().__init__(f"attribute {name!r} is {length} bytes of UTF-8; at most {limit} ({_BOUNDED[name]})")
        self.name, self.length, self.limit = name, length, limit


def shown(value) -> str:
    """A value fit for an error message: its repr, cut short when long (a long value is often the fault)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def check_attribute(name: str, value) -> None:
    """EnvelopeError unless `value` is text that fits where attribute `name` travels (see _BOUNDED)."""
    if not isinstance(value, str):
        raise EnvelopeError(f"attribute {name!r} must be a string, got {type(value).__name__}")
    if value.isascii():
        length = len(value)
    else:
        try:
            length = len(value.encode())
        except UnicodeEncodeError:
            raise EnvelopeError(f"attribute {name!r} is not valid Unicode text (a lone surrogate?)") from None
    if length > MAX_ATTRIBUTE_BYTES:
        raise AttributeTooLong(name, length)


def check_attributes(event: "Event") -> None:
    """EnvelopeError unless an event built in code (not read) fits, as `Event.from_dict` demands of one read."""
    for name in ("id", "source", "type", "correlationid"):
        check_attribute(name, getattr(event, name))
    if event.subject is not None:
        check_attribute("subject", event.subject)


def read_json(raw: bytes | str, what: str = "the body"):
    """JSON text as Python objects; EnvelopeError, saying why, whatever is wrong with it."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise EnvelopeError(f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise EnvelopeError(f"{what} is nested too deeply to read") from None
    except ValueError:  # the only other: Python's limit on the digits of an integer
        raise EnvelopeError(f"{what} holds an integer of more than {sys.get_int_max_str_digits()} digits") from None
    except TypeError as exc:
        raise EnvelopeError(f"{what} is not JSON text ({exc})") from None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the spec's examples and every SDK write it."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    if not isinstance(text, str):
        raise EnvelopeError(f"time must be an RFC 3339 string, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"time {shown(text)} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise EnvelopeError(f"time {shown(text)} has no UTC offset")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise EnvelopeError(f"time {shown(text)} is out of range in UTC") from None


# Event ids and the ledger. A worker's ledger is keyed by (function, source:id) and writes the keys of a
# delivered batch in one transaction. Random ids (uuid4, uuid5) put each key on a different page of the
# ledger's index, so every transaction rewrites a page per event, more as the ledger grows; ids that begin
# with the time they were made put the keys of one batch side by side (about a third less work for the
# ledger: bench/ledger_keys.py). So Doppel's ids lead with the time in milliseconds:
# UUIDv7 (RFC 9562) for a new event, and for a derived one a UUIDv8 (RFC 9562's layout for ids of one's
# own making) that leads with its cause's time and carries a name hash, as a UUIDv5 does.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_MS_BITS = 48


def new_event_id() -> str:
    """A fresh event id: a UUIDv7, its first 48 bits the Unix time in milliseconds, the rest random."""
    return _uuid_text(time_ms(utcnow()), 7, int.from_bytes(os.urandom(10), "big"))


def derived_id(*parts: str, at: datetime | None = None) -> str:
    """A stable event id from stable inputs, so a re-run emits the same ids and is de-duplicated.

    With `at` (a time the inputs fix, such as the cause's), a UUIDv8 that leads with it in milliseconds
    (time-ordered, see above); without, a UUIDv5 of the inputs."""
    name = "doppel:" + "/".join(parts)
    if at is None:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:10], "big")
    return _uuid_text(time_ms(at), 8, digest)


def time_ms(moment: datetime) -> int:
    """Milliseconds since 1970 in UTC, held to the 48 bits a UUIDv7 gives them (a naive time is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return min(max((moment - _EPOCH) // _MS, 0), (1 << _MS_BITS) - 1)


def _uuid_text(ms: int, version: int, bits: int) -> str:
    """A UUID of RFC 9562's layout: 48 bits of `ms`, the version, then 74 of `bits` around the variant (10)."""
    value = (ms << 80) | (version << 76) | (((bits >> 62) & 0xFFF) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    data: dict
    id: str = field(default_factory=new_event_id)
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
            raise EnvelopeError(f"specversion must be {SPECVERSION!r}, got {shown(body.get('specversion'))}")
        for name in ("id", "source", "type"):
            if body.get(name) is None or body[name] == "":
                raise EnvelopeError(f"required attribute {name!r} is missing or empty")
            check_attribute(name, body[name])
        correlationid = body.get("correlationid")
        if correlationid is not None and correlationid != "":
            check_attribute("correlationid", correlationid)
        subject = body.get("subject")
        if subject is not None:
            check_attribute("subject", subject)
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
                raise EnvelopeError(f"attribute name {shown(name)} is not a valid CloudEvents extension name")
            extensions[name] = value
        return cls(
            type=body["type"],
            source=body["source"],
            id=body["id"],
            data=data,
            time=parse_time(body["time"]) if body.get("time") is not None and body["time"] != "" else utcnow(),
            correlationid=correlationid or "",
            subject=subject,
            extensions=extensions,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Event":
        return cls.from_dict(read_json(raw, "body"))


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
                if isinstance(value, bytes):
                    try:
                        value = value.decode()
                    except UnicodeDecodeError:
                        raise EnvelopeError(f"header {shown(name)} is not UTF-8 text") from None
                attributes[name[len(prefix):].lower()] = value
    if "specversion" not in attributes:
        return Event.from_json(body)
    if content_type and not content_type.startswith("application/json") and not content_type.endswith("+json"):
        raise EnvelopeError(f"binary-mode data of content type {content_type!r}; Doppel reads JSON data only")
    attributes["data"] = read_json(body, "binary-mode data") if body else {}
    return Event.from_dict(attributes)
