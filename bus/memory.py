"""An in-memory broker with RabbitMQ's semantics, for the embedded default and fast tests.

Topic routing with `*` and `#`, manual acks with prefetch, redelivery of what a
consumer leaves unacked, queue TTLs that dead-letter into another queue (which is
how retries are delayed), a delivery limit that dead-letters a message put back
too often (with `x-delivery-count` and `x-death` as RabbitMQ writes them), and a
confirm that means "enqueued". It lives and dies with the process: it is not a
replacement for RabbitMQ in production.

Two ways to drive it: `start()` runs a dispatcher thread that hands deliveries to
a thread pool (the `doppel run` default); `run_until_idle()` delivers on the
calling thread and, with `fast_forward`, skips the waits of delay queues, so flow
tests run whole chains with retries in milliseconds.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from core.broker import DEFAULT_EXCHANGE, EXCHANGE, Message, PublishError, QueueSpec, check_sendable

log = logging.getLogger(__name__)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` is zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


@dataclass
class _Queued:
    message: Message
    redelivered: bool = False
    expires_at: float | None = None
    row_id: int | None = None  # in the parking table, when the queue is kept on disk
    returned: int = 0  # times a consumer put it back (RabbitMQ's x-delivery-count)


@dataclass
class _Consumer:
    handler: Callable
    prefetch: int
    unacked: int = 0


@dataclass
class _Queue:
    spec: QueueSpec
    ready: deque = field(default_factory=deque)
    consumers: list = field(default_factory=list)


class MemoryDelivery:
    def __init__(self, broker: "MemoryBroker", queue: str, item: _Queued, consumer: _Consumer | None):
        self.message = item.message
        self.queue = queue
        self.redelivered = item.redelivered
        self._broker, self._item, self._consumer = broker, item, consumer
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    def ack(self) -> None:
        self._settle(requeue=False)

    def nack(self, requeue: bool = True) -> None:
        self._settle(requeue=requeue)

    def _settle(self, requeue: bool) -> None:
        with self._broker._lock:
            if self._settled:
                raise RuntimeError(f"delivery of {self.message.message_id} settled twice")
            self._settled = True
            if self._consumer is not None:
                self._consumer.unacked -= 1
            if requeue:
                self._broker._put_back(self.queue, self._item)
            elif self._item.row_id is not None:
                self._broker._parking.remove(self._item.row_id)
            self._broker._wake.notify_all()


class MemoryBroker:
    def __init__(self, *, fast_forward: bool = False, threads: int = 8, parking=None):
        """`parking`: a ParkingTable that keeps `*.dead` queues on disk across processes."""
        self._parking = parking
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queues: dict[str, _Queue] = {}
        self._bindings: list[tuple[str, str]] = []
        self._delayed: list[tuple[float, int, str]] = []  # (expires_at, seq, queue) heap
        self._seq = itertools.count()
        self._offset = 0.0  # virtual time skipped by fast_forward
        self._fast_forward = fast_forward
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None
        self._stopping = False

    # -- clock ---------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self._offset

    # -- Broker protocol -------------------------------------------------------
    def declare(self, queues: Sequence[QueueSpec]) -> None:
        with self._lock:
            for spec in queues:
                if spec.name not in self._queues:
                    self._queues[spec.name] = _Queue(spec)
                    if self._parking is not None and spec.name.endswith(".dead"):
                        for row_id, message in self._parking.load(spec.name):
                            self._queues[spec.name].ready.append(_Queued(message, row_id=row_id))
                for pattern in spec.bindings:
                    if (pattern, spec.name) not in self._bindings:
                        self._bindings.append((pattern, spec.name))

    @property
    def queues_as_found(self) -> dict[str, str]:
        return {}  # nothing outlives the process: every queue is declared as this version says

    def publish(self, messages: Sequence[Message]) -> None:
        """Enqueue every message, or none when one is Unsendable: what RabbitMQ could not carry is refused here too."""
        for message in messages:
            check_sendable(message)
        with self._lock:
            for message in messages:
                if message.exchange == DEFAULT_EXCHANGE:
                    if message.routing_key not in self._queues:
                        raise PublishError(f"no queue {message.routing_key!r} to deliver {message.message_id} to")
                    self._enqueue(message.routing_key, message)
                elif message.exchange == EXCHANGE:
                    for queue in {q for pattern, q in self._bindings if topic_matches(pattern, message.routing_key)}:
                        self._enqueue(queue, message)
                else:
                    raise PublishError(f"no exchange {message.exchange!r}")
            self._wake.notify_all()

    def publisher_state(self) -> dict:
        """As RabbitBroker's; a publish here is a function call, so there is no channel to lose."""
        return {"ok": True}

    def consume(self, queue: str, handler: Callable, prefetch: int = 32) -> None:
        with self._lock:
            self._require(queue).consumers.append(_Consumer(handler, prefetch))
            self._wake.notify_all()

    def consume_batches(self, queue: str, handler: Callable, prefetch: int = 32) -> None:
        """`consume` with `handler` taking a list; this broker hands over one delivery at a time."""
        self.consume(queue, lambda delivery: handler([delivery]), prefetch)

    def get(self, queue: str) -> MemoryDelivery | None:
        with self._lock:
            self._expire_due()
            ready = self._require(queue).ready
            return MemoryDelivery(self, queue, ready.popleft(), None) if ready else None

    def depth(self, queue: str) -> int:
        with self._lock:
            self._expire_due()
            return len(self._require(queue).ready)

    def purge(self, queue: str) -> int:
        with self._lock:
            ready = self._require(queue).ready
            count = len(ready)
            for item in ready:
                if item.row_id is not None:
                    self._parking.remove(item.row_id)
            ready.clear()
            return count

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if self._dispatcher:
            self._dispatcher.join(timeout=10)
        if self._pool:
            self._pool.shutdown(wait=True)

    # -- driving -------------------------------------------------------------
    def start(self) -> None:
        """Deliver in the background, handlers on a thread pool (like RabbitBroker)."""
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="doppel-handler")
        self._dispatcher = threading.Thread(target=self._dispatch_forever, name="doppel-memory-broker", daemon=True)
        self._dispatcher.start()

    def run_until_idle(self, timeout: float = 30.0, max_deliveries: int | None = None) -> int:
        """Deliver on this thread until nothing is ready, unacked or delayed (or `max_deliveries` were made)."""
        deadline = time.monotonic() + timeout
        delivered = 0
        while time.monotonic() < deadline:
            if max_deliveries is not None and delivered >= max_deliveries:
                return delivered
            batch = self._take_ready()
            if batch:
                for deliver in batch:
                    deliver()
                delivered += len(batch)
                continue
            with self._lock:
                if self._unsettled():
                    # Handled, but its ack waits for the ledger's commit (written by another thread)
                    self._wake.wait(0.05)
                    continue
                if not self._delayed:
                    return delivered
                wait = self._delayed[0][0] - self.now()
                if wait > 0 and self._fast_forward:
                    self._offset += wait
                elif wait > 0:
                    self._wake.wait(min(wait, 0.05))
        raise TimeoutError(f"broker still busy after {timeout} s")

    def idle(self) -> bool:
        """Nothing ready for a consumer, unacked or delayed: every message delivered so far was handled and settled
        (what `run_until_idle` waits for; for a broker delivering in the background, a test's sentinel)."""
        with self._lock:
            self._expire_due()
            waiting = any(queue.ready for queue in self._queues.values() if queue.consumers)
            return not waiting and not self._unsettled() and not self._delayed

    def _unsettled(self) -> int:
        return sum(consumer.unacked for queue in self._queues.values() for consumer in queue.consumers)

    def _dispatch_forever(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            batch = self._take_ready()
            for deliver in batch:
                self._pool.submit(self._guarded, deliver)
            if not batch:
                with self._lock:
                    if self._stopping:
                        return
                    wait = 0.5
                    if self._delayed:
                        wait = max(0.0, min(wait, self._delayed[0][0] - self.now()))
                    self._wake.wait(wait)

    @staticmethod
    def _guarded(deliver) -> None:
        try:
            deliver()
        except Exception:  # a handler must settle its delivery; an escape is a bug worth a loud log
            log.exception("handler raised out of the worker")

    # -- internals -----------------------------------------------------------
    def _require(self, queue: str) -> _Queue:
        try:
            return self._queues[queue]
        except KeyError:
            raise PublishError(f"no queue {queue!r}; declare the topology first") from None

    def _enqueue(self, queue: str, message: Message) -> None:
        target = self._queues[queue]
        if message.timestamp is None:
            message = replace(message, timestamp=int(self.now()))
        item = _Queued(message)
        if self._parking is not None and queue.endswith(".dead"):
            item.row_id = self._parking.add(queue, message)
        if target.spec.message_ttl_ms is not None:
            item.expires_at = self.now() + target.spec.message_ttl_ms / 1000
            heapq.heappush(self._delayed, (item.expires_at, next(self._seq), queue))
        target.ready.append(item)

    def _expire_due(self) -> None:
        """Move messages whose queue TTL ran out to the queue's dead-letter target, in order."""
        now = self.now()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, queue = heapq.heappop(self._delayed)
            source = self._queues[queue]
            if not source.ready:
                continue
            self._dead_letter(queue, source.ready.popleft(), "expired")

    def _put_back(self, queue: str, item: _Queued) -> None:
        """A consumer's nack with requeue: to the head of the queue, or dead-lettered over the delivery limit."""
        spec = self._queues[queue].spec
        returned = item.returned + 1
        if spec.delivery_limit is not None and returned > spec.delivery_limit:
            self._dead_letter(queue, item, "delivery_limit")
            return
        headers = {**item.message.headers, "x-delivery-count": returned}
        self._queues[queue].ready.appendleft(replace(item, message=replace(item.message, headers=headers),
                                                     redelivered=True, returned=returned))

    def _dead_letter(self, queue: str, item: _Queued, reason: str) -> None:
        """Move a message to its queue's dead-letter target, recording why in x-death (as RabbitMQ does)."""
        target = self._queues[queue].spec.dead_letter_to
        headers = {k: v for k, v in item.message.headers.items() if k != "x-delivery-count"}
        death = {"queue": queue, "reason": reason, "time": int(self.now()),
                 "routing-keys": [item.message.routing_key], "count": 1}
        headers["x-death"] = [death] + list(headers.get("x-death", []))
        if target is None or target not in self._queues:
            log.warning("%s: dropped %s (%s): no dead-letter queue", queue, item.message.message_id, reason)
            return
        self._enqueue(target, replace(item.message, headers=headers, exchange=DEFAULT_EXCHANGE, routing_key=target))

    def _take_ready(self) -> list[Callable[[], None]]:
        """Pair ready messages with consumers that have prefetch room."""
        with self._lock:
            self._expire_due()
            batch = []
            for name, queue in self._queues.items():
                if queue.spec.message_ttl_ms is not None:
                    continue  # delay queues have no consumers; they only expire
                for consumer in queue.consumers:
                    while queue.ready and consumer.unacked < consumer.prefetch:
                        consumer.unacked += 1
                        delivery = MemoryDelivery(self, name, queue.ready.popleft(), consumer)
                        batch.append(lambda c=consumer, d=delivery: c.handler(d))
            return batch


def parked_table(metadata):
    """The table of parked messages, on `metadata` (SQLAlchemy is imported only by a process that parks)."""
    from sqlalchemy import Column, Integer, LargeBinary, String, Table, Text
    return Table(
        "embedded_parked", metadata,
        Column("row_id", Integer, primary_key=True, autoincrement=True),
        Column("queue", String(255), nullable=False, index=True),
        Column("message_id", String(255)),
        Column("routing_key", String(255), nullable=False),
        Column("headers", Text, nullable=False),
        Column("correlation_id", String(255)),
        Column("timestamp", Integer),
        Column("body", LargeBinary, nullable=False))


class ParkingTable:
    """Parked messages of the embedded bus, in the SQL database, so they outlive the process
    that parked them and `doppel dlq` in another process sees them."""

    def __init__(self, engine):
        from sqlalchemy import MetaData
        self._engine = engine
        self._table = parked_table(MetaData())

    def add(self, queue: str, message: Message) -> int:
        import json
        with self._engine.begin() as conn:
            result = conn.execute(self._table.insert().values(
                queue=queue, message_id=message.message_id, routing_key=message.routing_key,
                headers=json.dumps(message.headers, default=str), correlation_id=message.correlation_id,
                timestamp=message.timestamp, body=message.body))
            return result.inserted_primary_key[0]

    def load(self, queue: str) -> list[tuple[int, Message]]:
        import json
        query = self._table.select().where(self._table.c.queue == queue).order_by(self._table.c.row_id)
        with self._engine.connect() as conn:
            return [(r.row_id, Message(routing_key=r.routing_key, body=r.body, message_id=r.message_id,
                                       exchange=DEFAULT_EXCHANGE, headers=json.loads(r.headers),
                                       timestamp=r.timestamp, correlation_id=r.correlation_id))
                    for r in conn.execute(query)]

    def remove(self, row_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._table.delete().where(self._table.c.row_id == row_id))
