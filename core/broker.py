"""What the worker needs from a message broker, and nothing more.

Two implementations keep the same semantics: `bus.rabbitmq.RabbitBroker` (pika,
the real thing) and `bus.memory.MemoryBroker` (the embedded default and the fast
tests). Retry, parking and idempotency are decided by the worker on top of these
few verbs, so both brokers behave alike by construction.

Both also refuse the same messages: `check_sendable` holds every field against
AMQP 0-9-1's limits before anything is sent, so a message pika could not encode
is refused in the caller's thread with the field named, and never reaches the
connection (where a failure half-way through a publish would put the broker's
confirms out of step with the messages they confirm).
"""
from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Callable, Protocol, Sequence

from schemas.envelope import Event

EXCHANGE = "doppel.events"
DEFAULT_EXCHANGE = ""  # AMQP's default exchange: routing key = queue name

# Headers Doppel writes; the attempt count lives here, never in process memory.
H_ATTEMPT = "x-doppel-attempt"
H_ERROR = "x-doppel-error"
H_ERROR_KIND = "x-doppel-error-kind"  # invalid | permanent | exhausted | abandoned
H_FUNCTION = "x-doppel-function"
H_ROUTING_KEY = "x-doppel-routing-key"  # the event type, kept when a message moves between queues
H_PARKED_AT = "x-doppel-parked-at"
H_REDRIVEN_AT = "x-doppel-redriven-at"  # published again by a worker's sweep: its claim ran out, its message was lost


# AMQP 0-9-1's limits, as pika encodes and RabbitMQ reads them.
SHORT_STRING_BYTES = 255  # message-id, correlation-id, content-type, routing key, exchange, header names
FRAME_MAX = 131_072  # RabbitMQ's and pika's default; all of a message's properties travel in one frame
_HEADER_FRAME_OVERHEAD = 22  # frame header and end octet, class, weight, body size, property flags
MAX_BODY_BYTES = 16 * 1024 * 1024  # RabbitMQ 4's max_message_size (3.x: 128 MiB); a bigger body closes the channel
_INT64 = (-2 ** 63, 2 ** 63 - 1)  # pika writes every integer header as a signed 64-bit `l`
_INT32 = (-2 ** 31, 2 ** 31 - 1)  # a decimal's digits are a signed 32-bit integer
_UINT64 = 2 ** 64  # timestamps are unsigned 64-bit


class PublishError(RuntimeError):
    """The broker did not confirm a message (nack, returned as unroutable, or connection lost)."""


class Unsendable(PublishError):
    """A message AMQP cannot carry: a field over its limit, or a header of a type no AMQP table holds.

    Raised before anything is sent, so nothing of the batch reached the broker;
    retrying cannot help, the message itself has to change. `field` names what
    is wrong ("correlation_id", "headers['x-note']"), `length` and `limit` are in
    bytes when it is a matter of size (None otherwise).
    """

    def __init__(self, message_id: str, field: str, problem: str, length: int | None = None,
                 limit: int | None = None):
        super().__init__(f"message {_shown(message_id)} cannot be sent: {field} {problem}")
        self.field, self.length, self.limit = field, length, limit


@dataclass(frozen=True)
class Message:
    """One AMQP message, outgoing or delivered."""
    routing_key: str
    body: bytes
    message_id: str
    exchange: str = EXCHANGE
    headers: dict = field(default_factory=dict)
    timestamp: int | None = None  # seconds since the epoch (AMQP's timestamp property)
    correlation_id: str | None = None
    content_type: str = "application/cloudevents+json"


class Delivery(Protocol):
    """A message handed to a consumer; exactly one of ack/nack is called, from any thread."""
    message: Message
    queue: str
    redelivered: bool
    settled: bool  # ack or nack was called

    def ack(self) -> None: ...

    def nack(self, requeue: bool = True) -> None: ...


@dataclass(frozen=True)
class QueueSpec:
    name: str
    kind: str = "quorum"  # quorum | classic
    bindings: tuple[str, ...] = ()  # topic patterns on EXCHANGE
    message_ttl_ms: int | None = None
    # Expired messages, and those over the delivery limit, go to this queue (via the default exchange).
    dead_letter_to: str | None = None
    single_active_consumer: bool = False
    # Deliveries of one message before it is dead-lettered instead of delivered again (quorum queues):
    # the last resort against a message that comes back for ever.
    delivery_limit: int | None = None
    # A queue of this name declared by an older Doppel with other arguments is used as it is (and
    # reported in `queues_as_found`) instead of failing the whole declaration.
    accept_existing: bool = False


class Broker(Protocol):
    def declare(self, queues: Sequence[QueueSpec]) -> None:
        """Declare EXCHANGE and these queues with their bindings; safe to repeat."""

    @property
    def queues_as_found(self) -> dict[str, str]:
        """Queues (`accept_existing`) that exist with other arguments than declared, and how they differ."""

    def publish(self, messages: Sequence[Message]) -> None:
        """Publish and return only once the broker confirmed every one (PublishError otherwise).

        A message to EXCHANGE that no queue is bound for is dropped silently, as
        AMQP does; a message to DEFAULT_EXCHANGE names its queue in routing_key.
        A message that does not fit AMQP (`check_sendable`) raises Unsendable, and
        nothing of the batch is sent.
        """

    def publisher_state(self) -> dict:
        """{"ok": bool, ...}: whether a publish would be sent and confirmed right now (for /health)."""

    def consume(self, queue: str, handler: Callable[[Delivery], None], prefetch: int = 32) -> None:
        """Call `handler` for each delivery, off the I/O thread, at most `prefetch` unacked at once."""

    def consume_batches(self, queue: str, handler: Callable[[list[Delivery]], None], prefetch: int = 32) -> None:
        """`consume`, with `handler` called with a list of the deliveries that arrived together (one or more)."""

    def get(self, queue: str) -> Delivery | None:
        """One message from the queue without a consumer (for `doppel dlq`), or None when empty."""

    def depth(self, queue: str) -> int: ...

    def purge(self, queue: str) -> int: ...

    def close(self) -> None: ...


def event_message(event: Event) -> Message:
    """The AMQP message an event travels as: its type the routing key, its id the message id."""
    return Message(routing_key=event.type, body=event.to_json(), message_id=event.id,
                   timestamp=int(time.time()), correlation_id=event.correlationid)
# -- what AMQP can carry ---------------------------------------------------------------

def check_sendable(message: Message, frame_max: int = FRAME_MAX) -> None:
    """Unsendable unless every field of `message` fits AMQP 0-9-1 as pika writes it.

    Short strings are at most 255 bytes of UTF-8; header values are of the types
    an AMQP table holds (text, bytes, bool, 64-bit integers, decimals, datetimes,
    nested tables and arrays, None; not floats, which pika cannot write); the
    properties fit in one frame; the body is at most MAX_BODY_BYTES.
    """
    what = message.message_id
    _short_string(what, "exchange", message.exchange)
    _short_string(what, "routing_key", message.routing_key)
    size = _HEADER_FRAME_OVERHEAD + 1 + 8  # and the delivery mode and timestamp
    size += 1 + _short_string(what, "message_id", message.message_id)
    size += 1 + _short_string(what, "content_type", message.content_type)
    if message.correlation_id is not None:
        size += 1 + _short_string(what, "correlation_id", message.correlation_id)
    timestamp = message.timestamp
    if timestamp is not None and (type(timestamp) is not int or not 0 <= timestamp < _UINT64):
        raise Unsendable(what, "timestamp", f"is {timestamp!r}; AMQP's is whole seconds since the epoch, 0 to 2^64-1")
    if not isinstance(message.body, (bytes, bytearray, memoryview)):
        raise Unsendable(what, "body", f"is {type(message.body).__name__}; AMQP carries bytes")
    if len(message.body) > MAX_BODY_BYTES:
        raise Unsendable(what, "body", f"is {len(message.body)} bytes; RabbitMQ takes at most {MAX_BODY_BYTES}",
                         len(message.body), MAX_BODY_BYTES)
    if not isinstance(message.headers, dict):
        raise Unsendable(what, "headers", f"are {type(message.headers).__name__}; AMQP headers are a table (dict)")
    if message.headers:
        try:
            size += _table(what, "headers", message.headers)
        except RecursionError:
            raise Unsendable(what, "headers", "are nested too deeply to encode") from None
    if size > frame_max:
        raise Unsendable(what, "headers", f"and the other properties take {size} bytes; AMQP sends them in one "
                         f"frame of at most {frame_max}", size, frame_max)


def _shown(text) -> str:
    """A field's value fit for an error: quoted, and cut short when long (the long value is often the fault)."""
    text = str(text)
    return repr(text) if len(text) <= 60 else repr(text[:40]) + f"... ({len(text)} characters)"


def _utf8(what: str, name: str, text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise Unsendable(what, name, "is not valid Unicode text (a lone surrogate?); AMQP carries UTF-8") from None


def _short_string(what: str, name: str, value) -> int:
    """The encoded length of a short string, checked."""
    if isinstance(value, bytes):
        length = len(value)
    elif isinstance(value, str):
        length = len(value) if value.isascii() else len(_utf8(what, name, value))
    else:
        raise Unsendable(what, name, f"is {type(value).__name__}; AMQP wants text here")
    if length > SHORT_STRING_BYTES:
        raise Unsendable(what, name, f"is {length} bytes; AMQP short strings hold at most {SHORT_STRING_BYTES} "
                         "bytes of UTF-8", length, SHORT_STRING_BYTES)
    return length


def _table(what: str, name: str, table: dict) -> int:
    """The encoded size of an AMQP field table, every key and value checked."""
    size = 4
    for key, value in table.items():
        size += 1 + _short_string(what, f"the name of {name}[{_shown(key)}]", key)
        size += _value(what, f"{name}[{_shown(key)}]", value)
    return size


def _value(what: str, name: str, value) -> int:
    """The encoded size of one table or array value, checked against what pika can write."""
    if isinstance(value, str):
        return 5 + (len(value) if value.isascii() else len(_utf8(what, name, value)))
    if isinstance(value, bytes):
        return 5 + len(value)
    if value is None:
        return 1
    if isinstance(value, bool):
        return 2
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise Unsendable(what, name, "is an integer beyond 64 bits; AMQP tables hold signed 64-bit integers")
        return 9
    if isinstance(value, dict):
        return 1 + _table(what, name, value)
    if isinstance(value, list):
        return 5 + sum(_value(what, f"{name}[{n}]", item) for n, item in enumerate(value))
    if isinstance(value, Decimal):
        if not _fits_decimal(value):
            raise Unsendable(what, name, "is a decimal AMQP cannot hold (at most 255 places, 32-bit digits)")
        return 6
    if isinstance(value, datetime):
        if not 0 <= calendar.timegm(value.utctimetuple()) < _UINT64:
            raise Unsendable(what, name, "is a time before 1970; AMQP timestamps count seconds from 1970")
        return 9
    raise Unsendable(what, name, f"is a {type(value).__name__}; AMQP tables hold text, bytes, bool, integers, "
                     "decimals, datetimes, tables, arrays and None (send a float as text)")


def _fits_decimal(value: Decimal) -> bool:
    if not value.is_finite():
        return False
    value = value.normalize()
    exponent = value.as_tuple().exponent
    places = -exponent if exponent < 0 else 0
    digits = int(value * (Decimal(10) ** places)) if places else int(value)
    return places <= 255 and _INT32[0] <= digits <= _INT32[1]


def node_urls(urls: "str | Sequence[str] | None") -> list[str]:
    """The AMQP URLs of RabbitMQ's nodes, in order: one URL, several comma-separated (DOPPEL_AMQP_URL), or a
    list; empty when none is given."""
    listed = (urls or "").split(",") if urls is None or isinstance(urls, str) else list(urls)
    return [url.strip() for url in listed if url and url.strip()]
