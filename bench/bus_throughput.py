"""Events/s through Doppel's bus against raw pika on the same broker, measured in the same run.

    python bench/bus_throughput.py [--amqp URL] [--events 20000]

Consume: a no-op function behind Doppel's worker (envelope parse, schema
validation, idempotency ledger claim + complete in SQLite, ack) against a raw
pika consume + ack loop (prefetch 100) draining a pre-filled quorum queue.
Publish: Doppel's batched publisher (confirms for every message) against raw
pika publishing with asynchronous confirms (up to 1,000 in flight).
Prints each rate and the ratio Doppel / raw.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus import topology  # noqa: E402
from bus.ledger import Ledger  # noqa: E402
from bus.rabbitmq import RabbitBroker  # noqa: E402
from bus.retry import RetryPolicy  # noqa: E402
from bus.worker import Worker, event_message  # noqa: E402
from doppel.db import make_engine  # noqa: E402
from doppel.deps import Deps  # noqa: E402
from schemas.envelope import Event  # noqa: E402

BODY_EVENT = lambda n: Event(type="env.requested", source="bench", data={"env": f"env-{n}", "production": "shop",
                                                                           "owner": "x" * 700})  # ~1 KiB bodies


def raw_fill(url: str, queue: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    for body in bodies:  # unconfirmed: the fill is not measured; wait_depth checks it arrived
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


def wait_depth(url: str, queue: str, depth: int, timeout=120) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    deadline = time.monotonic() + timeout
    while channel.queue_declare(queue, passive=True).method.message_count < depth:
        if time.monotonic() > deadline:
            raise SystemExit(f"{queue} never reached {depth} messages")
        time.sleep(0.1)
    connection.close()


def raw_consume(url: str, queue: str, count: int) -> float:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=100)
    seen = 0
    started = time.perf_counter()
    for method, _props, _body in channel.consume(queue, auto_ack=False):
        channel.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            break
    elapsed = time.perf_counter() - started
    channel.cancel()
    connection.close()
    return count / elapsed


def doppel_consume(url: str, count: int, db_dir: str) -> float:
    done = threading.Event()
    handled = [0]
    lock = threading.Lock()

    def noop(event, deps):
        with lock:
            handled[0] += 1
            if handled[0] == count:
                done.set()
        return []

    name = f"noop{uuid.uuid4().hex[:6]}"
    function = SimpleNamespace(NAME=name, CONSUMES="bench.none", EMITS=(), handle=noop)
    broker = RabbitBroker(url)
    retry = RetryPolicy()
    broker.declare(topology.queues_for([function], retry))
    bodies = [event_message(BODY_EVENT(n)) for n in range(count)]
    raw_fill(url, topology.function_queue(name), [m.body for m in bodies])
    wait_depth(url, topology.function_queue(name), count)
    engine = make_engine(f"sqlite:///{db_dir}/bench-{name}.db")
    worker = Worker(broker, [function], Ledger(engine), Deps(), retry=retry, prefetch=100)
    started = time.perf_counter()
    worker.start()
    done.wait(timeout=600)
    elapsed = time.perf_counter() - started
    worker.stop()
    broker.close()
    return count / elapsed


def raw_publish(url: str, queue: str, bodies: list[bytes], window: int = 1000) -> float:
    """pika SelectConnection with asynchronous confirms, `window` messages in flight."""
    state = SimpleNamespace(sent=0, confirmed=0, started=0.0, elapsed=0.0)

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        state.channel = channel
        channel.confirm_delivery(on_confirm)
        state.started = time.perf_counter()
        pump()

    def pump():
        while state.sent < len(bodies) and state.sent - state.confirmed < window:
            state.channel.basic_publish("", queue, bodies[state.sent], pika.BasicProperties(delivery_mode=2))
            state.sent += 1

    def on_confirm(frame):
        method = frame.method
        # A multiple ack confirms everything up to its tag; tags are 1..N in order either way.
        state.confirmed = max(state.confirmed, method.delivery_tag)
        if state.confirmed >= len(bodies):
            state.elapsed = time.perf_counter() - state.started
            connection.close()
        else:
            pump()

    connection = pika.SelectConnection(pika.URLParameters(url), on_open_callback=on_open)
    connection.ioloop.start()
    return len(bodies) / state.elapsed


def doppel_publish(url: str, queue: str, events: list[Event], batch: int = 1000) -> float:
    broker = RabbitBroker(url)
    messages = [event_message(e) for e in events]
    messages = [m.__class__(**{**m.__dict__, "exchange": "", "routing_key": queue}) for m in messages]
    started = time.perf_counter()
    for start in range(0, len(messages), batch):
        broker.publish(messages[start:start + batch])
    elapsed = time.perf_counter() - started
    broker.close()
    return len(messages) / elapsed


def declare(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_purge(queue)
    connection.close()


def delete(url: str, *queues: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in queues:
        channel.queue_delete(queue)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amqp", default=os.environ.get("DOPPEL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2, help="alternate raw/Doppel this many times; best of each")
    args = parser.parse_args()
    events = [BODY_EVENT(n) for n in range(args.events)]
    bodies = [e.to_json() for e in events]
    print(f"{args.events} events of {len(bodies[0])} bytes; {args.rounds} rounds, best of each")
    with tempfile.TemporaryDirectory() as db_dir:
        results = {"raw consume": [], "doppel consume": [], "raw publish": [], "doppel publish": []}
        for _ in range(args.rounds):
            queue = f"bench.raw.{uuid.uuid4().hex[:6]}"
            declare(args.amqp, queue)
            raw_fill(args.amqp, queue, bodies)
            wait_depth(args.amqp, queue, args.events)
            results["raw consume"].append(raw_consume(args.amqp, queue, args.events))
            results["doppel consume"].append(doppel_consume(args.amqp, args.events, db_dir))
            declare(args.amqp, queue)
            results["raw publish"].append(raw_publish(args.amqp, queue, bodies))
            declare(args.amqp, queue)
            results["doppel publish"].append(doppel_publish(args.amqp, queue, events))
            delete(args.amqp, queue)
    best = {name: max(rates) for name, rates in results.items()}
    for name, rate in best.items():
        print(f"{name:<16} {rate:10.0f} events/s")
    print(f"consume ratio (Doppel worker / raw pika): {best['doppel consume'] / best['raw consume']:.2f}")
    print(f"publish ratio (Doppel batched / raw async confirms): {best['doppel publish'] / best['raw publish']:.2f}")


if __name__ == "__main__":
    main()
