"""RabbitMQ behind the Broker protocol: one pika connection, its own I/O thread, and reconnects by itself.

Threads. A pika connection is not thread-safe, so one I/O thread owns it and
runs its ioloop for the broker's whole life. Every other thread (callers of
publish, declare, get; handlers acking) hands work over with
`ioloop.add_callback_threadsafe` and waits on a Future. Handlers run on a thread
pool per consumer, never on the I/O thread, so heartbeats keep flowing while a
handler takes minutes. A consumer started with `consume_batches` hands its
handler the deliveries of one socket read together, as one list on one thread.

Channels. One confirm-mode channel carries every publish. One channel serves
`get` (what `doppel dlq` takes stays unacked on it until settled). Each consumer
has its own channel, so its prefetch is its own and its death costs no one
else. Declare, depth and purge each open a short-lived channel: AMQP closes a
channel on an error such as a missing queue, and only that call should fail.

Outages. The connection is re-established with exponential backoff (0.5 s, then
doubling up to 10 s); the declared topology and the consumers are restored
before anything else is sent. What callers see meanwhile:

- `publish` called while RabbitMQ is away WAITS for the reconnect, up to its
  `timeout` (30 s by default), then raises BrokerUnavailable (a PublishError).
  Nothing is sent after the caller gave up.
- Messages already sent but not yet confirmed when the connection drops raise
  PublishError at once: RabbitMQ may or may not have them, so publishing again
  may duplicate them (consumers de-duplicate by event id).
- `declare`, `get`, `depth`, `purge` also wait for the connection up to their
  timeout, and fail if it drops while they are in progress.
- Deliveries in flight when the connection drops are redelivered by RabbitMQ;
  their `ack`/`nack` become logged no-ops.

Confirms. RabbitMQ numbers the messages of a confirm-mode channel 1, 2, 3...
and confirms them by that number, so the publisher must count exactly what went
out. Every message is checked against AMQP's limits (`check_sendable`) in the
caller's thread, before it is handed to the I/O thread: one that cannot be sent
raises Unsendable and nothing of its batch is sent. A message is counted only
once pika has written it; if pika raises anyway (it encodes all of a message's
frames before writing any), nothing went out and the count holds. A channel
whose count may be off (a publish that failed half-way, a confirm for a number
never sent, or no confirm for CONFIRM_GIVE_UP_S) is never used again: what it
owed fails ("may or may not have been enqueued"), it is closed, and a new one
opens. `publisher_state()` tells /health whether publishing works right now.

Settling in bulk. A handler's ack or nack is queued, and the I/O thread is woken
once for everything queued meanwhile, not once per message. It then acks the
longest run of a consumer's oldest unsettled deliveries with one multiple ack
(every delivery that run covers has been acked by its handler) and the others
one by one, so a slow handler never has its delivery acked by another's.

The broker only moves bytes: retries, parking and idempotency are the worker's.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import pika
from pika import spec
from pika.adapters.select_connection import IOLoop
from pika.exceptions import ChannelClosedByBroker

from core.broker import (
    DEFAULT_EXCHANGE,
    EXCHANGE,
    FRAME_MAX,
    Message,
    PublishError,
    QueueSpec,
    Unsendable,
    check_sendable,
)

log = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5  # seconds; doubles after each failed attempt
RECONNECT_MAX_DELAY = 10.0
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


def queue_arguments(queue: QueueSpec) -> dict:
    """The x-arguments that make RabbitMQ implement a QueueSpec."""
    arguments: dict[str, Any] = {"x-queue-type": queue.kind}
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
    return pika.BasicProperties(
        content_type=message.content_type, delivery_mode=pika.DeliveryMode.Persistent,
        headers=dict(message.headers), message_id=message.message_id,
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


# -- deliveries -------------------------------------------------------------------

class RabbitDelivery:
    """A message handed to a consumer or taken by `get`; ack/nack from any thread.

    Settling goes through the I/O thread on the channel the message came on. If
    that channel has died since, RabbitMQ has already put the message back, so
    settling is a logged no-op rather than an error.
    """

    def __init__(self, broker: "RabbitBroker", channel, delivery_tag: int, queue: str, message: Message,
                 redelivered: bool, unsettled: "_UnsettledTags | None" = None):
        self.message, self.queue, self.redelivered = message, queue, redelivered
        self._broker, self._channel, self._tag = broker, channel, delivery_tag
        self._unsettled = unsettled  # the consumer channel's bookkeeping; None for `get`
        self._settled = False
        self._lock = threading.Lock()

    @property
    def settled(self) -> bool:
        return self._settled

    def ack(self) -> None:
        self._settle("ack", False)

    def nack(self, requeue: bool = True) -> None:
        self._settle("nack", requeue)

    def _settle(self, verb: str, requeue: bool) -> None:
        with self._lock:
            if self._settled:
                raise RuntimeError(f"delivery of {self.message.message_id} from {self.queue} settled twice")
            self._settled = True
        if not self._broker._settle_soon(self, verb, requeue):
            self._log_dropped(verb, "the broker is closed")

    def _log_dropped(self, verb: str, why: str) -> None:
        log.info("%s of %s from %s not sent: %s; RabbitMQ will deliver it again",
                 verb, self.message.message_id, self.queue, why)


class _UnsettledTags:
    """The delivery tags one consumer channel handed out and RabbitMQ still counts as unacked (I/O thread)."""

    def __init__(self):
        self._order: deque[int] = deque()  # delivery order, which is tag order
        self._settled: set[int] = set()  # settled one by one while an older delivery was still out

    def delivered(self, tag: int) -> None:
        self._order.append(tag)

    def settle(self, channel, acks: set[int], nacks: list[tuple[int, bool]]) -> None:
        for tag, requeue in nacks:
            channel.basic_nack(tag, requeue=requeue)
            self._settled.add(tag)
        # The oldest deliveries, as far as each was acked now or settled before: one multiple ack covers them,
        # and no delivery still being handled is among them.
        last = None
        while self._order:
            tag = self._order[0]
            if tag in acks:
                acks.discard(tag)
                last = tag
            elif tag in self._settled:
                self._settled.discard(tag)
            else:
                break
            self._order.popleft()
        if last is not None:
            channel.basic_ack(last, multiple=True)
        for tag in acks:  # behind a delivery still being handled
            channel.basic_ack(tag)
            self._settled.add(tag)


def _settle_on_channel(channel, deliveries: list[tuple[RabbitDelivery, str, bool]]) -> None:
    """Send the acks and nacks handlers queued for one channel (I/O thread)."""
    unsettled = deliveries[0][0]._unsettled
    if unsettled is None:  # taken by `get`: nothing to batch with
        for delivery, verb, requeue in deliveries:
            if verb == "ack":
                channel.basic_ack(delivery._tag)
            else:
                channel.basic_nack(delivery._tag, requeue=requeue)
        return
    unsettled.settle(channel, {d._tag for d, verb, _ in deliveries if verb == "ack"},
                     [(d._tag, requeue) for d, verb, requeue in deliveries if verb == "nack"])


# -- publishing -------------------------------------------------------------------

@dataclass(eq=False)
class _Batch:
    """One publish() call: its caller waits on `future` until every message is confirmed."""
    messages: Sequence[Message]
    future: Future = field(default_factory=Future)
    unconfirmed: int = 0
    sent_at: float = 0.0  # time.monotonic() when it went out; the age of what is still unconfirmed
    # Built by the caller's thread, so the I/O thread only encodes and sends.
    properties: list = field(init=False)

    def __post_init__(self):
        self.properties = [amqp_properties(message) for message in self.messages]

    def confirmed(self) -> None:
        self.unconfirmed -= 1
        if self.unconfirmed == 0:
            _succeed(self.future, None)


@dataclass(eq=False)
class _Sent:
    batch: _Batch
    message: Message
    returned: bool = False


class _ConfirmChannel:
    """The confirm-mode channel every publish goes through, and what it still owes confirms for.

    Lives on the I/O thread. Batches that arrive while the channel is down wait
    here and go out when it reopens, unless their caller has given up.
    """

    def __init__(self, on_lost: Callable[[], None]):
        self._on_lost = on_lost
        self._channel = None
        self._last_tag = 0  # delivery tags count 1, 2, 3... per channel once confirms are on
        self._unconfirmed: dict[int, _Sent] = {}
        self._waiting: list[_Batch] = []
        self._broken: str | None = None  # why the open channel is being replaced; its confirms no longer count
        self.opened = 0  # channels opened so far (the first, then one after each loss or replacement)
        self.replaced = 0  # channels given up because their confirms could no longer be matched

    def open(self, connection) -> None:
        if self._channel is not None and not self._channel.is_closed:
            return
        self._broken = None
        self.opened += 1
        self._channel = connection.channel(on_open_callback=self._on_open)
        self._channel.add_on_close_callback(self._on_closed)

    def send(self, batch: _Batch) -> None:
        if self._channel is None or not self._channel.is_open or self._last_tag < 0:
            self._waiting.append(batch)
            return
        if not batch.future.set_running_or_notify_cancel():
            return  # the caller timed out while we were disconnected: send nothing
        batch.unconfirmed, batch.sent_at = len(batch.messages), time.monotonic()
        channel = self._channel
        for sent, (message, properties) in enumerate(zip(batch.messages, batch.properties)):
            frames_before = channel.connection.frames_sent
            try:
                # mandatory only on the default exchange: a message to a missing queue must come back
                # as an error; on the topic exchange an unbound type is dropped, as AMQP intends.
                channel.basic_publish(message.exchange, message.routing_key, message.body, properties,
                                      mandatory=message.exchange == DEFAULT_EXCHANGE)
            except Exception as exc:  # noqa: BLE001 - check_sendable should have caught it; keep the count true
                self._publish_failed(batch, message, sent, exc, channel.connection.frames_sent == frames_before)
                return
            # RabbitMQ numbers what it received: count a message only once it went out.
            self._last_tag += 1
            self._unconfirmed[self._last_tag] = _Sent(batch, message)

    def _publish_failed(self, batch: _Batch, message: Message, sent: int, error: Exception,
                        nothing_written: bool) -> None:
        """basic_publish raised: fail the batch; replace the channel unless the count is known to hold."""
        earlier = f"; {sent} earlier message(s) of its batch were sent" if sent else ""
        cause = describe(error)[:300]  # pika's errors can quote the whole over-long value
        if nothing_written and self._channel is not None and self._channel.is_open:
            # pika encodes all of a message's frames before writing the first: nothing of it went out,
            # and nothing was counted for it. Encoding fails the same way every time.
            _fail(batch.future, Unsendable(message.message_id, "the message", f"was refused by pika ({cause}); "
                                           f"nothing of it was sent{earlier}"))
            return
        _fail(batch.future, PublishError(f"publishing {message.message_id} failed half-way ({cause}){earlier}; "
                                         "it may or may not have been enqueued"))
        self.replace(f"a publish failed half-way: {cause}")

    def replace(self, why: str) -> None:
        """Stop trusting this channel: fail what it owes, close it; a new channel opens once it has closed."""
        channel = self._channel
        if channel is None or self._broken is not None:
            return
        self._broken, self._last_tag = why, -1  # new batches wait for the new channel
        self.replaced += 1
        log.error("replacing the publish channel: %s", why)
        self._fail_unconfirmed(f"the publish channel was replaced before RabbitMQ confirmed {{unconfirmed}} of "
                               f"{{total}} message(s) ({why}); they may or may not have been enqueued")
        if channel.is_open:
            channel.close()

    def oldest_unconfirmed_s(self) -> float:
        """How long the oldest message still owed a confirm has waited (0 when none is)."""
        for sent in self._unconfirmed.values():  # insertion order is send order
            return time.monotonic() - sent.batch.sent_at
        return 0.0

    def state(self) -> dict:
        if self._broken is not None:
            channel = "being replaced"
        elif self._channel is None or self._channel.is_closed:
            channel = "closed"
        elif self._channel.is_open and self._last_tag >= 0:
            channel = "confirming"
        else:
            channel = "opening"
        return {"channel": channel, "unconfirmed": len(self._unconfirmed),
                "oldest_unconfirmed_s": round(self.oldest_unconfirmed_s(), 3), "waiting": len(self._waiting),
                "channels_opened": self.opened, "channels_replaced": self.replaced}

    def abandon_waiting(self, error: PublishError) -> None:
        waiting, self._waiting = self._waiting, []
        for batch in waiting:
            _fail(batch.future, error)

    def _on_open(self, channel) -> None:
        self._last_tag = -1  # not ready until Confirm.SelectOk
        channel.add_on_return_callback(self._on_returned)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirming())

    def _on_confirming(self) -> None:
        self._last_tag = 0
        waiting, self._waiting = self._waiting, []
        for batch in waiting:
            self.send(batch)

    def _on_confirm(self, frame) -> None:
        if self._broken is not None:
            return  # the channel is being replaced; what it owed has failed already
        method = frame.method
        if method.delivery_tag > self._last_tag:
            self.replace(f"RabbitMQ confirmed message {method.delivery_tag}, but this channel sent only "
                         f"{self._last_tag}")
            return
        for tag in self._settled_tags(method.delivery_tag, method.multiple):
            sent = self._unconfirmed.pop(tag)
            if isinstance(method, spec.Basic.Nack):
                _fail(sent.batch.future, PublishError(
                    f"RabbitMQ refused {sent.message.message_id} for {sent.message.routing_key!r} (nack); "
                    "the queue may be over its length limit or the node out of disk"))
            else:
                sent.batch.confirmed()

    def _settled_tags(self, tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [tag] if tag in self._unconfirmed else []
        settled = []
        for pending in self._unconfirmed:  # insertion order is tag order
            if pending > tag:
                break
            settled.append(pending)
        return settled

    def _on_returned(self, _channel, method, properties, _body) -> None:
        """An unroutable mandatory message; its ack follows, so find it among the unconfirmed."""
        for sent in self._unconfirmed.values():
            message = sent.message
            if not sent.returned and (message.exchange, message.routing_key, message.message_id) == (
                    method.exchange, method.routing_key, properties.message_id):
                sent.returned = True
                _fail(sent.batch.future, PublishError(
                    f"RabbitMQ returned {message.message_id}: no queue {message.routing_key!r} "
                    f"to deliver it to ({method.reply_text}); declare the topology first"))
                return

    def _on_closed(self, channel, reason) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        self._fail_unconfirmed(f"the publish channel closed before RabbitMQ confirmed {{unconfirmed}} of "
                               f"{{total}} message(s) ({describe(reason)}); they may or may not have been enqueued")
        self._on_lost()

    def _fail_unconfirmed(self, template: str) -> None:
        lost, self._unconfirmed = self._unconfirmed, {}
        for batch in {id(sent.batch): sent.batch for sent in lost.values()}.values():
            _fail(batch.future, PublishError(template.format(unconfirmed=batch.unconfirmed,
                                                             total=len(batch.messages))))


# -- consuming --------------------------------------------------------------------

class _Consumer:
    """One consume() call: its own channel and prefetch, and its own handler threads.

    Channel work happens on the I/O thread; handlers run on the pool.
    """

    def __init__(self, broker: "RabbitBroker", queue: str, handler: Callable, prefetch: int, threads: int,
                 batches: bool = False):
        self.broker, self.queue, self.handler, self.prefetch = broker, queue, handler, prefetch
        self.batches = batches  # handler takes a list: what arrived in one read from the socket
        self._inbox: list[RabbitDelivery] = []  # batches only: delivered in this pass of the ioloop
        self._flush_due = False
        self._waiting: list[RabbitDelivery] | None = None  # a batch handed to the pool, not yet taken by a thread
        self._waiting_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=f"doppel-handler-{queue}")
        self.first_start: Future = Future()  # consuming, or why the first attempt failed
        self.stopping = False
        self.retry_delay = RECONNECT_FIRST_DELAY
        self._channel = None
        self._consumer_tag: str | None = None
        self._unsettled = _UnsettledTags()

    def start(self, connection) -> None:
        if self.stopping or (self._channel is not None and not self._channel.is_closed):
            return
        self._channel = connection.channel(on_open_callback=self._on_open)
        self._channel.add_on_close_callback(self._on_closed)

    def stop(self, stopped: Callable[[], None]) -> None:
        """Ask RabbitMQ to send no more; `stopped` runs once it agreed (or at once if not consuming)."""
        self.stopping = True
        channel = self._channel
        if channel is None or not channel.is_open or self._consumer_tag is None:
            stopped()
            return
        channel.basic_cancel(self._consumer_tag, callback=lambda _frame: stopped())

    def _on_open(self, channel) -> None:
        self._unsettled = _UnsettledTags()  # delivery tags start again at 1 on a new channel
        channel.add_on_cancel_callback(lambda _frame: self._on_cancelled_by_broker(channel))
        channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _frame: self._consume(channel))

    def _consume(self, channel) -> None:
        self._consumer_tag = channel.basic_consume(self.queue, self._on_message, auto_ack=False,
                                                   callback=lambda _frame: self._on_consuming())

    def _on_consuming(self) -> None:
        self.retry_delay = RECONNECT_FIRST_DELAY
        _succeed(self.first_start, None)
        log.info("consuming from %s (prefetch %d)", self.queue, self.prefetch)

    def _on_cancelled_by_broker(self, channel) -> None:
        log.warning("RabbitMQ stopped the consumer on %s (queue deleted or moved?); will try again", self.queue)
        if channel.is_open:
            channel.close()

    def _on_closed(self, channel, reason) -> None:
        if channel is not self._channel:
            return
        self._channel, self._consumer_tag = None, None
        if not self.first_start.done():
            _fail(self.first_start, _refusal(f"consuming from {self.queue}", reason))
        if not self.stopping:
            self.broker._restart_consumer_later(self, reason)

    def _on_message(self, channel, method, properties, body) -> None:
        delivery = RabbitDelivery(self.broker, channel, method.delivery_tag, self.queue,
                                  delivered_message(method, properties, body), bool(method.redelivered),
                                  self._unsettled)
        self._unsettled.delivered(method.delivery_tag)
        if not self.batches:
            self._submit(self._handle, delivery)
            return
        # Everything pika reads from the socket in one go is dispatched before the ioloop's timers run:
        # the deliveries of one read become one batch, handed to one handler thread.
        self._inbox.append(delivery)
        if not self._flush_due:
            self._flush_due = True
            self.broker._ioloop.call_later(0, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        batch, self._inbox = self._inbox, []
        if not batch:
            return
        with self._waiting_lock:
            if self._waiting is not None:  # no thread has taken the last batch yet: this joins it
                self._waiting.extend(batch)
                return
            self._waiting = batch
        self._submit(self._take_waiting, None)

    def _take_waiting(self, _unused) -> None:
        with self._waiting_lock:
            batch, self._waiting = self._waiting, None
        self._handle(batch)

    def _submit(self, handle: Callable, work) -> None:
        self.broker._handlers.started()
        try:
            self.pool.submit(handle, work)
        except RuntimeError:  # the pool is shut down: we are closing, RabbitMQ will redeliver it
            self.broker._handlers.finished()

    def _handle(self, work) -> None:
        """Run the handler on `work` (a delivery, or a batch's list of them); if it raises, put back what it
        left unsettled."""
        deliveries = work if self.batches else [work]
        try:
            self.handler(work)
        except Exception:  # noqa: BLE001 - a handler must settle its deliveries; an escape is a bug
            what = deliveries[0].message.message_id if len(deliveries) == 1 else f"a batch of {len(deliveries)}"
            log.exception("handler for %s raised on %s; putting the unsettled back", self.queue, what)
            for delivery in deliveries:
                if not delivery.settled:
                    delivery.nack(requeue=True)
        finally:
            self.broker._handlers.finished()


class _RunningHandlers:
    """How many handlers are running, so close() can wait for them."""

    def __init__(self):
        self._count = 0
        self._changed = threading.Condition()

    def started(self) -> None:
        with self._changed:
            self._count += 1

    def finished(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> int:
        """Wait until none runs, up to `timeout`; the number still running."""
        with self._changed:
            self._changed.wait_for(lambda: self._count == 0, timeout)
            return self._count


# -- the broker -------------------------------------------------------------------

class RabbitBroker:
    """The Broker protocol on a real RabbitMQ. See the module docstring for threads and outages."""

    def __init__(self, url: str, *, consumer_threads: int | None = None, connect_timeout: float = 30):
        """Connect, and wait up to `connect_timeout` s for the first connection (BrokerUnavailable otherwise).

        `consumer_threads`: handler threads per consume(); default its prefetch, at most 16.
        """
        self.where = safe_url(url)
        self.reconnects = 0  # times the connection came back after a loss
        self._parameters = pika.URLParameters(url)
        self._parameters.client_properties = {
            "connection_name": f"doppel {socket.gethostname()} pid {os.getpid()}"}
        self._consumer_threads = consumer_threads
        self._handlers = _RunningHandlers()
        self._get_lock = threading.Lock()  # pika allows one basic.get in flight per channel
        self._lifecycle = threading.Lock()
        self._closed = False  # close() was called
        self._io_gone = False  # the I/O thread has stopped: nothing can be handed to it
        self._connected = threading.Event()
        # Owned by the I/O thread:
        self._ioloop = IOLoop()
        self._connection = None
        self._ready = False  # connected and the topology restored
        self._closing = False
        self._backoff = RECONNECT_FIRST_DELAY
        self._reconnect_timer = None
        self._last_error: BaseException | None = None
        self._declared: dict[str, QueueSpec] = {}
        self._as_found: dict[str, str] = {}  # accept_existing queues declared with other arguments: how they differ
        self._consumers: list[_Consumer] = []
        self._waiting: list[Callable[[], None]] = []  # calls made while disconnected
        self._publisher = _ConfirmChannel(on_lost=self._reopen_publisher_later)
        self._confirm_watch = None
        self._frame_max = min(self._parameters.frame_max, FRAME_MAX)
        self._get_channel = None
        self._pending_get: tuple[str, Future] | None = None
        # Acks and nacks from handler threads, waiting for the I/O thread (see "Settling in bulk").
        self._settle_lock = threading.Lock()
        self._to_settle: list[tuple[RabbitDelivery, str, bool]] = []
        self._settle_woken = False  # the I/O thread has been asked to send _to_settle

        self._thread = threading.Thread(target=self._run_io_thread, name="doppel-rabbitmq-io", daemon=True)
        self._thread.start()
        self._call_soon(self._connect)
        self._call_soon(self._watch_confirms)
        if not self._connected.wait(connect_timeout):
            error = self._last_error
            self.close(timeout=1)
            raise BrokerUnavailable(
                f"RabbitMQ at {self.where} not reachable within {connect_timeout:g} s (last error: {describe(error)}); "
                "is it running? tests/services/rabbitmq.sh starts one on this machine")

    # -- Broker protocol ------------------------------------------------------------

    def declare(self, queues: Sequence[QueueSpec], timeout: float = OPERATION_TIMEOUT) -> None:
        """Declare EXCHANGE and these queues with their bindings; remembered and re-declared on reconnect."""
        specs = list(queues)
        self._request(lambda future: self._declare_on_io(specs, future), timeout,
                      f"declaring {', '.join(s.name for s in specs) or 'the exchange'}")

    @property
    def queues_as_found(self) -> dict[str, str]:
        """Queues declared `accept_existing` that exist with other arguments, and RabbitMQ's words on how."""
        return dict(self._as_found)

    def publish(self, messages: Sequence[Message], timeout: float = OPERATION_TIMEOUT) -> None:
        """Return once RabbitMQ confirmed every message; PublishError on nack, return, or loss.

        Unsendable, and nothing sent, when a message does not fit AMQP. During an
        outage this waits for the reconnect up to `timeout`; see the module docstring.
        """
        if not messages:
            return
        for message in messages:
            check_sendable(message, self._frame_max)  # Unsendable: nothing of the batch is sent
        batch = _Batch(list(messages))
        what = f"publishing {len(batch.messages)} message(s) to {self.where}"
        if not self._call_soon(lambda: self._publish_on_io(batch)):
            raise BrokerUnavailable(f"{what}: the broker is closed")
        self._wait(batch.future, timeout, what)

    def publisher_state(self, timeout: float = 2.0) -> dict:
        """Whether publishing works right now, as the I/O thread sees it (BrokerUnavailable if it does not answer).

        {"ok", "connected", "channel": confirming | opening | being replaced | closed, "unconfirmed",
        "oldest_unconfirmed_s", "waiting", "channels_opened", "channels_replaced"}, and "problem" when not ok.
        """
        future: Future = Future()
        if not self._call_soon(lambda: _succeed(future, self._publisher_state_on_io())):
            raise BrokerUnavailable("the broker is closed")
        return self._wait(future, timeout, "reading the publisher's state")

    def consume(self, queue: str, handler: Callable, prefetch: int = 32,
                timeout: float = OPERATION_TIMEOUT) -> None:
        """Deliver `queue` to `handler` on a thread pool, at most `prefetch` unacked at once.

        Returns once consuming. Raises MissingQueue (and forgets the consumer) if
        the queue does not exist. If RabbitMQ is away, returns after `timeout`
        and the consumer starts when the connection comes back.
        """
        self._start_consumer(queue, handler, prefetch, timeout, batches=False)

    def consume_batches(self, queue: str, handler: Callable, prefetch: int = 32,
                        timeout: float = OPERATION_TIMEOUT) -> None:
        """`consume`, but `handler` gets a list: the deliveries that arrived together (one socket read)."""
        self._start_consumer(queue, handler, prefetch, timeout, batches=True)

    def _start_consumer(self, queue: str, handler: Callable, prefetch: int, timeout: float, batches: bool) -> None:
        threads = self._consumer_threads or max(1, min(prefetch, MAX_HANDLER_THREADS))
        consumer = _Consumer(self, queue, handler, prefetch, threads, batches=batches)
        if not self._call_soon(lambda: self._add_consumer(consumer)):
            raise BrokerUnavailable(f"consuming from {queue}: the broker is closed")
        try:
            consumer.first_start.result(timeout)
        except (BrokerUnavailable, TimeoutError):
            log.warning("not consuming from %s yet: RabbitMQ at %s is away; will start on reconnect",
                        queue, self.where)
        except PublishError:  # refused: a missing queue, no permission...
            self._call_soon(lambda: self._forget_consumer(consumer))
            raise

    def get(self, queue: str, timeout: float = OPERATION_TIMEOUT) -> RabbitDelivery | None:
        """One message, left unacked until its ack/nack, or None when the queue is empty."""
        with self._get_lock:
            return self._request(lambda future: self._get_on_io(queue, future), timeout,
                                 f"taking a message from {queue}")

    def depth(self, queue: str, timeout: float = OPERATION_TIMEOUT) -> int:
        """Messages ready in `queue` (not those delivered and unacked); MissingQueue if there is no such queue."""
        return self._message_count(f"counting messages in {queue}", timeout,
                                   lambda channel, reply: channel.queue_declare(queue, passive=True, callback=reply))

    def purge(self, queue: str, timeout: float = OPERATION_TIMEOUT) -> int:
        """Drop the ready messages of `queue` (unacked ones stay); how many were dropped."""
        return self._message_count(f"purging {queue}", timeout,
                                   lambda channel, reply: channel.queue_purge(queue, callback=reply))

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop consuming, let running handlers finish (up to `timeout`), disconnect, join the I/O thread."""
        with self._lifecycle:
            if self._closed:
                return
            self._closed = True
        self._stop_consumers(timeout)
        still_running = self._handlers.wait_idle(timeout)
        if still_running:
            log.warning("closing with %d handler(s) still running; their messages will be redelivered",
                        still_running)
        for consumer in list(self._consumers):
            consumer.pool.shutdown(wait=False, cancel_futures=True)
        self._call_soon(self._disconnect)
        self._thread.join(timeout)
        with self._lifecycle:
            self._io_gone = True
        if self._thread.is_alive():
            log.error("the RabbitMQ I/O thread did not stop within %g s", timeout)
        else:
            self._ioloop.close()
            with self._settle_lock:
                dropped, self._to_settle = self._to_settle, []
            for delivery, verb, _requeue in dropped:
                delivery._log_dropped(verb, "the broker closed first")

    # -- handing work to the I/O thread ---------------------------------------------

    def _run_io_thread(self) -> None:
        """Run the ioloop until _disconnect stops it; a callback that raises must not end the thread."""
        while True:
            try:
                self._ioloop.start()
                return
            except Exception:  # noqa: BLE001 - a bug in a callback; the connection must live on
                log.exception("a callback on the RabbitMQ I/O thread failed; carrying on")
                if self._closing and self._connection is None:
                    return

    def _call_soon(self, callback: Callable[[], None]) -> bool:
        """Run `callback` on the I/O thread; False when that thread is gone."""
        with self._lifecycle:
            if self._io_gone:
                return False
            self._ioloop.add_callback_threadsafe(callback)
            return True

    def _settle_soon(self, delivery: RabbitDelivery, verb: str, requeue: bool) -> bool:
        """Queue an ack/nack; wake the I/O thread only if it is not already due to send the queue."""
        with self._settle_lock:
            self._to_settle.append((delivery, verb, requeue))
            if self._settle_woken:
                return True
            self._settle_woken = True
        if self._call_soon(self._settle_on_io):
            return True
        with self._settle_lock:
            self._settle_woken = False
            if (delivery, verb, requeue) in self._to_settle:
                self._to_settle.remove((delivery, verb, requeue))
        return False

    def _settle_on_io(self) -> None:
        with self._settle_lock:
            queued, self._to_settle = self._to_settle, []
            self._settle_woken = False
        by_channel: dict[int, list[tuple[RabbitDelivery, str, bool]]] = {}
        for item in queued:
            by_channel.setdefault(id(item[0]._channel), []).append(item)
        for deliveries in by_channel.values():
            channel = deliveries[0][0]._channel
            if not channel.is_open:
                for delivery, verb, _requeue in deliveries:
                    delivery._log_dropped(verb, "its channel closed since it was delivered")
                continue
            _settle_on_channel(channel, deliveries)

    def _request(self, start: Callable[[Future], None], timeout: float, what: str) -> Any:
        """Run `start(future)` on the I/O thread once connected; wait for what it resolves to."""
        future: Future = Future()
        if not self._call_soon(lambda: self._start_when_ready(start, future, what)):
            raise BrokerUnavailable(f"{what}: the broker is closed")
        return self._wait(future, timeout, what)

    def _wait(self, future: Future, timeout: float, what: str) -> Any:
        try:
            return future.result(timeout)
        except TimeoutError:
            if not future.cancel() and future.done():
                return future.result()  # answered just as we gave up
            raise BrokerUnavailable(f"{what}: no answer from RabbitMQ at {self.where} within {timeout:g} s "
                                    "(see the log for reconnect attempts)") from None

    def _start_when_ready(self, start: Callable[[Future], None], future: Future, what: str) -> None:
        if self._closing:
            _fail(future, BrokerUnavailable(f"{what}: the broker is closing"))
        elif not self._ready:
            self._waiting.append(lambda: self._start_when_ready(start, future, what))
        elif future.set_running_or_notify_cancel():
            try:
                start(future)
            except Exception as exc:  # noqa: BLE001 - a pika error here belongs to the caller
                _fail(future, PublishError(f"{what}: {exc}"))

    def _message_count(self, what: str, timeout: float, rpc: Callable) -> int:
        """Run one queue RPC on its own channel; the message_count of its reply."""
        def start(future: Future) -> None:
            self._on_own_channel(future, what, lambda channel: rpc(
                channel, lambda frame: self._finish(future, channel, frame.method.message_count)))
        return self._request(start, timeout, what)

    def _on_own_channel(self, future: Future, what: str, use: Callable) -> None:
        """Open a channel for one call; if RabbitMQ closes it (missing queue...), that call fails alone."""
        channel = self._connection.channel(on_open_callback=use)
        channel.add_on_close_callback(lambda _channel, reason: _fail(future, _refusal(what, reason)))

    @staticmethod
    def _finish(future: Future, channel, result: Any) -> None:
        _succeed(future, result)
        channel.close()

    # -- connection lifecycle (I/O thread) ------------------------------------------

    def _connect(self) -> None:
        self._reconnect_timer = None
        if self._closing:
            return
        log.info("connecting to RabbitMQ at %s", self.where)
        self._connection = pika.SelectConnection(
            self._parameters, on_open_callback=self._on_connected, on_open_error_callback=self._on_connect_failed,
            on_close_callback=self._on_disconnected, custom_ioloop=self._ioloop)

    def _on_connect_failed(self, _connection, error: BaseException) -> None:
        self._connection, self._last_error = None, error
        if self._closing:
            self._ioloop.stop()
            return
        log.warning("cannot connect to RabbitMQ at %s: %s; next try in %.1f s", self.where, describe(error),
                    self._backoff)
        self._reconnect_later()

    def _on_disconnected(self, _connection, reason: BaseException) -> None:
        self._connection, self._ready, self._get_channel, self._last_error = None, False, None, reason
        if self._closing:
            self._ioloop.stop()
            return
        log.warning("lost the connection to RabbitMQ at %s: %s; reconnecting in %.1f s",
                    self.where, describe(reason), self._backoff)
        self._reconnect_later()

    def _reconnect_later(self) -> None:
        self._reconnect_timer = self._ioloop.call_later(self._backoff, self._connect)
        self._backoff = min(self._backoff * 2, RECONNECT_MAX_DELAY)

    def _on_connected(self, connection) -> None:
        if self._connected.is_set():
            self.reconnects += 1
        log.info("connected to RabbitMQ at %s", self.where)
        self._backoff = RECONNECT_FIRST_DELAY
        restored: Future = Future()
        restored.add_done_callback(lambda done: self._on_topology_restored(connection, done))
        if self._declared:
            self._declare_on_io(list(self._declared.values()), restored)
        else:
            restored.set_result(None)

    def _on_topology_restored(self, connection, restored: Future) -> None:
        if restored.exception() is not None:
            log.error("could not re-declare the topology on %s: %s", self.where, describe(restored.exception()))
        if connection is not self._connection or not connection.is_open:
            return  # lost again meanwhile; the next connection starts over
        self._ready = True
        self._publisher.open(connection)
        for consumer in self._consumers:
            consumer.start(connection)
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            call()
        self._connected.set()

    def _disconnect(self) -> None:
        self._closing = True
        if self._reconnect_timer is not None:
            self._ioloop.remove_timeout(self._reconnect_timer)
        if self._confirm_watch is not None:
            self._ioloop.remove_timeout(self._confirm_watch)
        closed = BrokerUnavailable(f"the broker for {self.where} is closing")
        self._publisher.abandon_waiting(closed)
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            call()  # each sees _closing and fails its caller
        if self._connection is not None and not (self._connection.is_closing or self._connection.is_closed):
            self._connection.close()  # _on_disconnected / _on_connect_failed stop the ioloop
        elif self._connection is None:
            self._ioloop.stop()

    # -- topology (I/O thread) -------------------------------------------------------

    def _declare_on_io(self, specs: list[QueueSpec], future: Future) -> None:
        """Declare on a channel of its own. A queue that exists with other arguments and may be used as it is
        (`accept_existing`) makes RabbitMQ close that channel: the queue is then only checked to exist, on a new
        channel, and the rest follows."""
        steps: list[tuple[QueueSpec | None, str | None]] = [(None, None)]  # the exchange first
        for queue in specs:
            steps.append((queue, None))
            steps += [(queue, pattern) for pattern in queue.bindings]
        answered = [0]  # RabbitMQ answers a channel's RPCs in order: a refusal is of the step after these

        def send_from(channel) -> None:
            # pika sends a channel's RPCs one after another: once the last is answered, all were.
            for index in range(answered[0], len(steps)):
                queue, pattern = steps[index]
                done = lambda _frame, i=index: step_done(channel, i)  # noqa: E731
                if queue is None:
                    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True, callback=done)
                elif pattern is not None:
                    channel.queue_bind(queue.name, EXCHANGE, routing_key=pattern, callback=done)
                elif queue.name in self._as_found:
                    channel.queue_declare(queue.name, passive=True, callback=done)
                else:
                    channel.queue_declare(queue.name, durable=True, arguments=queue_arguments(queue), callback=done)

        def step_done(channel, index: int) -> None:
            answered[0] = index + 1
            if answered[0] == len(steps):
                for queue in specs:
                    self._declared[queue.name] = queue
                self._finish(future, channel, None)

        def closed(_channel, reason: BaseException) -> None:
            if future.done():
                return
            queue, pattern = steps[answered[0]] if answered[0] < len(steps) else (None, None)
            if (queue is not None and pattern is None and queue.accept_existing and queue.name not in self._as_found
                    and _inequivalent(reason) and self._connection is not None and self._connection.is_open):
                self._as_found[queue.name] = reason.reply_text
                log.warning("queue %s exists with other arguments than this version declares (%s); using it as "
                            "it is (`doppel topology` says how to bring it up to date)", queue.name, reason.reply_text)
                open_channel()
                return
            _fail(future, _refusal("declaring the topology", reason))

        def open_channel() -> None:
            channel = self._connection.channel(on_open_callback=send_from)
            channel.add_on_close_callback(closed)

        open_channel()

    # -- publishing (I/O thread) -----------------------------------------------------

    def _publish_on_io(self, batch: _Batch) -> None:
        if self._closing:
            _fail(batch.future, BrokerUnavailable(f"the broker for {self.where} is closing"))
        else:
            self._publisher.send(batch)  # waits inside while the channel is down

    def _watch_confirms(self) -> None:
        """Every CONFIRM_WATCH_S: a channel that has owed a confirm for CONFIRM_GIVE_UP_S is replaced."""
        self._confirm_watch = None
        if self._closing:
            return
        waited = self._publisher.oldest_unconfirmed_s()
        if waited > CONFIRM_GIVE_UP_S:
            self._publisher.replace(f"no confirm for {waited:.0f} s")
        self._confirm_watch = self._ioloop.call_later(CONFIRM_WATCH_S, self._watch_confirms)

    def _publisher_state_on_io(self) -> dict:
        state = {"connected": self._ready, **self._publisher.state()}
        if not self._ready:
            problem = "not connected to RabbitMQ"
        elif state["channel"] != "confirming":
            problem = f"the publish channel is {state['channel']}"
        elif state["oldest_unconfirmed_s"] > CONFIRM_OVERDUE_S:
            problem = f"a message has waited {state['oldest_unconfirmed_s']:.1f} s for its confirm"
        else:
            problem = None
        state["ok"] = problem is None
        if problem:
            state["problem"] = problem
        return state

    def _reopen_publisher_later(self) -> None:
        """The publish channel died; if the connection lives on (a channel error), open a new one."""
        def reopen() -> None:
            if self._ready and self._connection is not None and self._connection.is_open:
                self._publisher.open(self._connection)
        self._ioloop.call_later(0.1, reopen)

    # -- consuming (I/O thread) ------------------------------------------------------

    def _add_consumer(self, consumer: _Consumer) -> None:
        if self._closed:
            _fail(consumer.first_start, BrokerUnavailable(f"consuming from {consumer.queue}: the broker is closing"))
            return
        self._consumers.append(consumer)
        if self._ready:
            consumer.start(self._connection)

    def _forget_consumer(self, consumer: _Consumer) -> None:
        consumer.stopping = True
        if consumer in self._consumers:
            self._consumers.remove(consumer)
        consumer.pool.shutdown(wait=False)

    def _restart_consumer_later(self, consumer: _Consumer, reason: BaseException) -> None:
        """A consumer's channel died; if the connection lives on, try again with backoff."""
        delay = consumer.retry_delay
        consumer.retry_delay = min(delay * 2, RECONNECT_MAX_DELAY)

        def restart() -> None:
            if self._ready and not self._closing and self._connection is not None and self._connection.is_open:
                consumer.start(self._connection)
        if self._connection is not None and self._connection.is_open:
            log.warning("consumer on %s lost its channel (%s); trying again in %.1f s", consumer.queue,
                        describe(reason), delay)
            self._ioloop.call_later(delay, restart)

    def _stop_consumers(self, timeout: float) -> None:
        """Ask RabbitMQ to stop sending; wait until it agreed (no new deliveries after this)."""
        all_stopped: Future = Future()

        def stop_all() -> None:
            remaining = [len(self._consumers)]

            def one_stopped() -> None:
                remaining[0] -= 1
                if remaining[0] <= 0:
                    _succeed(all_stopped, None)
            if not self._consumers:
                _succeed(all_stopped, None)
            for consumer in list(self._consumers):
                consumer.stop(one_stopped)

        if self._call_soon(stop_all):
            try:
                all_stopped.result(timeout)
            except TimeoutError:
                log.warning("RabbitMQ did not confirm the consumers' cancel within %g s", timeout)

    # -- get (I/O thread) ------------------------------------------------------------

    def _get_on_io(self, queue: str, future: Future) -> None:
        channel = self._get_channel
        if channel is not None and channel.is_open:
            self._basic_get(channel, queue, future)
            return
        self._get_channel = channel = self._connection.channel(
            on_open_callback=lambda opened: self._basic_get(opened, queue, future))
        channel.add_on_close_callback(self._on_get_channel_closed)
        channel.add_callback(self._on_get_empty, [spec.Basic.GetEmpty], one_shot=False)

    def _basic_get(self, channel, queue: str, future: Future) -> None:
        self._pending_get = (queue, future)
        channel.basic_get(queue, callback=self._on_got, auto_ack=False)

    def _on_got(self, channel, method, properties, body) -> None:
        queue, future = self._pending_get
        self._pending_get = None
        delivery = RabbitDelivery(self, channel, method.delivery_tag, queue,
                                  delivered_message(method, properties, body), bool(method.redelivered))
        if not _succeed(future, delivery):
            channel.basic_nack(method.delivery_tag, requeue=True)  # its caller gave up: put it back

    def _on_get_empty(self, _frame) -> None:
        if self._pending_get is not None:
            _queue, future = self._pending_get
            self._pending_get = None
            _succeed(future, None)

    def _on_get_channel_closed(self, channel, reason: BaseException) -> None:
        if channel is self._get_channel:
            self._get_channel = None
        if self._pending_get is not None:
            queue, future = self._pending_get
            self._pending_get = None
            _fail(future, _refusal(f"taking a message from {queue}", reason))
