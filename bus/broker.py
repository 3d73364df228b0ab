"""What the worker needs from a message broker, and nothing more.

Two implementations keep the same semantics: `bus.rabbitmq.RabbitBroker` (pika,
the real thing) and `bus.memory.MemoryBroker` (the embedded default and the fast
tests). Retry, parking and idempotency are decided by the worker on top of these
few verbs, so both brokers behave alike by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

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


class PublishError(RuntimeError):
    """The broker did not confirm a message (nack, returned as unroutable, or connection lost)."""


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
        """

    def consume(self, queue: str, handler: Callable[[Delivery], None], prefetch: int = 32) -> None:
        """Call `handler` for each delivery, off the I/O thread, at most `prefetch` unacked at once."""

    def consume_batches(self, queue: str, handler: Callable[[list[Delivery]], None], prefetch: int = 32) -> None:
        """`consume`, with `handler` called with a list of the deliveries that arrived together (one or more)."""

    def get(self, queue: str) -> Delivery | None:
        """One message from the queue without a consumer (for `doppel dlq`), or None when empty."""

    def depth(self, queue: str) -> int: ...

    def purge(self, queue: str) -> int: ...

    def close(self) -> None: ...
