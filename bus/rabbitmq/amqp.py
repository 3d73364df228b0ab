"""What RabbitMQ needs to know of core's messages and queues, the errors it raises, and the broker's timings."""
from __future__ import annotations

import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import pika
from pika.exceptions import ChannelClosedByBroker

from core.broker import DEFAULT_EXCHANGE, Message, PublishError, QueueSpec, node_urls

RECONNECT_FIRST_DELAY = 0.5  # seconds; doubles after each failed attempt
RECONNECT_MAX_DELAY = 10.0
NEXT_NODE_DELAY = 0.1  # seconds before trying the next node of a cluster that has not been tried yet
OPERATION_TIMEOUT = 30.0  # how long publish/declare/get/depth/purge wait, outage included
CLOSE_TIMEOUT = 10.0  # how long close() waits for handlers still running
MAX_HANDLER_THREADS = 16
CONFIRM_OVERDUE_S = 10.0  # a message unconfirmed this long makes publisher_state() unhealthy
CONFIRM_GIVE_UP_S = OPERATION_TIMEOUT  # ... and this long, its channel is replaced (every caller has given up)
CONFIRM_WATCH_S = 1.0  # how often the I/O thread looks for overdue confirms


class BrokerUnavailable(PublishError):
    """RabbitMQ was not reachable, or did not answer, in time (or the broker object is closed)."""


class MissingQueue(PublishError):
    """The queue named does not exist in this vhost: declare the topology first."""

# -- small pure pieces ------------------------------------------------------------

def safe_url(url: str) -> str:
    """The AMQP URL with its password replaced by ***, fit for a log line or an error."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """The AMQP URLs of a RabbitMQ cluster's nodes: a comma-separated string (DOPPEL_AMQP_URL) or a list."""
    found = node_urls(urls)
    if not found:
        raise ValueError("no RabbitMQ URL given (DOPPEL_AMQP_URL: amqp://user:pass@host:5672/vhost, or several, "
                         "comma-separated, one per node of a cluster)")
    return found


def queue_arguments(queue: QueueSpec, quorum_group_size: int | None = None) -> dict:
    """The x-arguments that make RabbitMQ implement a QueueSpec; a quorum queue gets `quorum_group_size`
    replicas when it is given (RabbitMQ's own default otherwise)."""
    arguments: dict[str, Any] = {"x-queue-type": queue.kind}
    if queue.kind == "quorum" and quorum_group_size:
        arguments["x-quorum-initial-group-size"] = quorum_group_size
    if queue.message_ttl_ms is not None:
        arguments["x-message-ttl"] = queue.message_ttl_ms
    if queue.delivery_limit is not None:
        arguments["x-delivery-limit"] = queue.delivery_limit
    if queue.dead_letter_to:
        # Through the default exchange, so an expired message lands in exactly one named queue.
        arguments["x-dead-letter-exchange"] = DEFAULT_EXCHANGE
        arguments["x-dead-letter-routing-key"] = queue.dead_letter_to
        if queue.kind == "quorum":
            # Kept here until the target queue confirmed it: a target without a leader (a node starting)
            # delays the move instead of dropping the message. RabbitMQ requires reject-publish for it.
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
    if queue.single_active_consumer:
        arguments["x-single-active-consumer"] = True
    return arguments


def amqp_properties(message: Message) -> pika.BasicProperties:
    """The properties a message goes with; no headers table at all when it has no headers (delivered_message
    reads an absent table as {}), which spares pika encoding and RabbitMQ storing an empty one per message."""
    return pika.BasicProperties(
        content_type=message.content_type, delivery_mode=pika.DeliveryMode.Persistent,
        headers=dict(message.headers) if message.headers else None, message_id=message.message_id,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp if message.timestamp is not None else int(time.time()))


def delivered_message(method, properties: pika.BasicProperties, body: bytes) -> Message:
    """A Message as it came off the wire; headers are always a dict, even when the sender set none."""
    return Message(routing_key=method.routing_key, body=body, message_id=properties.message_id or "",
                   exchange=method.exchange, headers=dict(properties.headers or {}),
                   timestamp=properties.timestamp, correlation_id=properties.correlation_id,
                   content_type=properties.content_type or "")


def _succeed(future: Future, result: Any) -> bool:
    """Resolve a future unless its caller gave up on it already; True when it was resolved."""
    try:
        future.set_result(result)
        return True
    except InvalidStateError:
        return False


def _fail(future: Future, error: BaseException) -> None:
    try:
        future.set_exception(error)
    except InvalidStateError:
        pass


def describe(error: BaseException | None) -> str:
    """pika's connection errors often print as ''; say at least what kind of failure it was."""
    if error is None:
        return "none yet"
    text = str(error) or "; ".join(str(arg) or repr(arg) for arg in error.args)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _inequivalent(reason: BaseException) -> bool:
    """Whether a channel was closed because a queue exists with other arguments than declared."""
    return (isinstance(reason, ChannelClosedByBroker) and reason.reply_code == 406
            and "inequivalent arg" in reason.reply_text)


def _refusal(what: str, reason: BaseException) -> PublishError:
    """Why a channel closed under a call, as an error a person can act on."""
    if isinstance(reason, ChannelClosedByBroker):
        if reason.reply_code == 404 and "no queue" in reason.reply_text:
            return MissingQueue(f"{what}: {reason.reply_text}")
        return PublishError(f"{what}: RabbitMQ refused: {reason.reply_code} {reason.reply_text}")
    return BrokerUnavailable(f"{what}: lost the connection to RabbitMQ ({describe(reason)})")
