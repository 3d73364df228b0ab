"""Consuming: deliveries, their settling in bulk, and the consumers with their handler threads.

Settling in bulk. A handler's ack or nack is queued, and the I/O thread is woken
once for everything queued meanwhile, not once per message. It then acks the
longest run of a consumer's oldest unsettled deliveries with one multiple ack
(every delivery that run covers has been acked by its handler) and the others
one by one, so a slow handler never has its delivery acked by another's.

`broker` below is the RabbitBroker; it is not imported here, since it imports this module.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from bus.rabbitmq.amqp import RECONNECT_FIRST_DELAY, _fail, _refusal, _succeed, delivered_message
from core.broker import Message

log = logging.getLogger(__name__)


# -- deliveries -------------------------------------------------------------------

class RabbitDelivery:
    """A message handed to a consumer or taken by `get`; ack/nack from any thread.

    Settling goes through the I/O thread on the channel the message came on. If
    that channel has died since, RabbitMQ has already put the message back, so
    settling is a logged no-op rather than an error.
    """

    def __init__(self, broker, channel, delivery_tag: int, queue: str, message: Message,
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


# -- consuming --------------------------------------------------------------------

class _Consumer:
    """One consume() call: its own channel and prefetch, and its own handler threads.

    Channel work happens on the I/O thread; handlers run on the pool.
    """

    def __init__(self, broker, queue: str, handler: Callable, prefetch: int, threads: int,
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
