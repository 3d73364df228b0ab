"""The broker's I/O thread and its connection: handing work over, connect and reconnect (to the next node of a
cluster in turn), restoring the topology."""
from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any, Callable

import pika

from bus.rabbitmq.amqp import (
    NEXT_NODE_DELAY,
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    BrokerUnavailable,
    _fail,
    _inequivalent,
    _refusal,
    _succeed,
    describe,
    queue_arguments,
)
from bus.rabbitmq.consumer import RabbitDelivery, _settle_on_channel
from core.broker import EXCHANGE, PublishError, QueueSpec

log = logging.getLogger(__name__)


class _Connection:
    """The I/O thread's side of RabbitBroker: its state is set up by RabbitBroker.__init__."""

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
        log.info("connecting to RabbitMQ at %s", self.nodes[self.node])
        self._connection = pika.SelectConnection(
            self._parameters[self.node], on_open_callback=self._on_connected,
            on_open_error_callback=self._on_connect_failed, on_close_callback=self._on_disconnected,
            custom_ioloop=self._ioloop)

    def _on_connect_failed(self, _connection, error: BaseException) -> None:
        self._connection, self._last_error = None, error
        if self._closing:
            self._ioloop.stop()
            return
        self._tries += 1
        failed, delay = self.nodes[self.node], self._reconnect_later()
        log.warning("cannot connect to RabbitMQ at %s: %s; trying %s in %.1f s", failed, describe(error),
                    self.nodes[self.node], delay)

    def _on_disconnected(self, _connection, reason: BaseException) -> None:
        self._connection, self._ready, self._get_channel, self._last_error = None, False, None, reason
        if self._closing:
            self._ioloop.stop()
            return
        lost, delay = self.nodes[self.node], self._reconnect_later()
        log.warning("lost the connection to RabbitMQ at %s: %s; reconnecting to %s in %.1f s",
                    lost, describe(reason), self.nodes[self.node], delay)

    def _reconnect_later(self) -> float:
        """Connect to the next node in turn: at once while some node has not been tried since the last success,
        after the backoff once each has failed. The delay chosen."""
        self.node = (self.node + 1) % len(self.nodes)
        if self._tries % len(self.nodes):
            delay = NEXT_NODE_DELAY
        else:
            delay, self._backoff = self._backoff, min(self._backoff * 2, RECONNECT_MAX_DELAY)
        self._reconnect_timer = self._ioloop.call_later(delay, self._connect)
        return delay

    def _on_connected(self, connection) -> None:
        if self._connected.is_set():
            self.reconnects += 1
        log.info("connected to RabbitMQ at %s", self.nodes[self.node])
        self._backoff, self._tries = RECONNECT_FIRST_DELAY, 0
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
                    size = None if queue.name in self._sized_apart else self.quorum_group_size
                    channel.queue_declare(queue.name, durable=True, callback=done,
                                          arguments=queue_arguments(queue, size))

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
            if (queue is not None and pattern is None and queue.name not in self._sized_apart
                    and _inequivalent(reason) and "x-quorum-initial-group-size" in reason.reply_text
                    and self._connection is not None and self._connection.is_open):
                # Made with another replica count (fewer URLs then): the count only applies when a queue is made.
                self._sized_apart.add(queue.name)
                log.info("queue %s was made with another number of replicas than the %s node URLs given; keeping "
                         "it (rabbitmq-queues grow adds replicas, docs/bus.md)", queue.name, self.quorum_group_size)
                open_channel()
                return
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
