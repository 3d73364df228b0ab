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

Confirms are told in bus.rabbitmq.publisher, settling in bulk in bus.rabbitmq.consumer.

Clusters. Given the URLs of several nodes, the broker connects to the first that
answers; when the connection is lost, or an attempt fails, it moves on to the
next node in turn, trying each once at once before the backoff applies. Quorum
queues are declared with one replica per URL given (x-quorum-initial-group-size),
as AMQP does not tell a client how many nodes the cluster has.

The broker only moves bytes: retries, parking and idempotency are the worker's.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import Future
from typing import Callable, Sequence

import pika
from pika import spec
from pika.adapters.select_connection import IOLoop

from bus.rabbitmq.amqp import (
    CLOSE_TIMEOUT,
    CONFIRM_GIVE_UP_S,
    CONFIRM_OVERDUE_S,
    CONFIRM_WATCH_S,
    MAX_HANDLER_THREADS,
    OPERATION_TIMEOUT,
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    BrokerUnavailable,
    _fail,
    _refusal,
    _succeed,
    delivered_message,
    describe,
    safe_url,
    split_urls,
)
from bus.rabbitmq.connection import _Connection
from bus.rabbitmq.consumer import RabbitDelivery, _Consumer, _RunningHandlers
from bus.rabbitmq.publisher import _Batch, _ConfirmChannel
from core.broker import FRAME_MAX, Message, PublishError, QueueSpec, check_sendable

log = logging.getLogger(__name__)


# -- the broker -------------------------------------------------------------------

class RabbitBroker(_Connection):
    """The Broker protocol on a real RabbitMQ. See the module docstring for threads and outages."""

    def __init__(self, url: str | Sequence[str], *, consumer_threads: int | None = None, connect_timeout: float = 30,
                 quorum_group_size: int | None = None):
        """Connect, and wait up to `connect_timeout` s for the first connection (BrokerUnavailable otherwise).

        `url`: one AMQP URL, or those of a cluster's nodes (a list, or comma-separated). The first that answers
        is used; when it goes, the next in turn (see "Clusters" in the module docstring).
        `consumer_threads`: handler threads per consume(); default its prefetch, at most 16.
        `quorum_group_size`: replicas of each quorum queue declared; default the number of URLs when several
        are given (one per node), RabbitMQ's default with one.
        """
        urls = split_urls(url)
        self.nodes = [safe_url(one) for one in urls]
        self.where = ", ".join(self.nodes) if len(self.nodes) > 1 else self.nodes[0]
        self.node = 0  # index in `nodes` of the node connected to, or tried next
        self.reconnects = 0  # times the connection came back after a loss
        self.quorum_group_size = quorum_group_size or (len(urls) if len(urls) > 1 else None)
        self._tries = 0  # failed connection attempts since the last success
        self._parameters = [pika.URLParameters(one) for one in urls]
        for parameters in self._parameters:
            parameters.client_properties = {"connection_name": f"doppel {socket.gethostname()} pid {os.getpid()}"}
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
        self._sized_apart: set[str] = set()  # quorum queues made with another replica count: declared without it
        self._as_found: dict[str, str] = {}  # accept_existing queues declared with other arguments: how they differ
        self._consumers: list[_Consumer] = []
        self._waiting: list[Callable[[], None]] = []  # calls made while disconnected
        self._publisher = _ConfirmChannel(on_lost=self._reopen_publisher_later)
        self._confirm_watch = None
        self._frame_max = min(min(p.frame_max for p in self._parameters), FRAME_MAX)
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
