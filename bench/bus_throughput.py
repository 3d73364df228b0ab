"""Events/s through Doppel's bus against raw pika on the same broker, measured in the same run.

    python bench/bus_throughput.py [--amqp URL] [--events 20000] [--rounds 2] [--processes 2]

Consume: a no-op function behind Doppel's worker (envelope parse, schema
validation, idempotency ledger claim + complete in SQLite, ack) against a raw
pika consume + ack loop draining a pre-filled quorum queue, both with the same
prefetch (--prefetch, 100 by default).
Publish: Doppel's publisher (RabbitBroker.publish, which returns once every
message of the call is confirmed) against raw pika publishing the same messages
with asynchronous confirms (up to 1,000 in flight). Doppel is measured twice:
one caller making calls of 1,000 (the pipe drains at the end of each call,
while the caller waits for its last confirm), and two callers making calls of
500 at once on the same connection, as a worker's handler threads do (at most
1,000 in flight, as for raw pika). "The same messages": the properties Doppel
sends with every event (content type, message id, correlation id, timestamp,
persistent), built as each is sent, so raw pika encodes the same frames; `raw
publish bare` (a body and the persistent flag only, as this bench measured
before session 13) is printed beside it for reference, not in the ratio.
Prints each rate and the ratio Doppel / raw, and for consume the CPU time of
this process per event on each side (steadier than events/s on a shared
machine, and what one worker's throughput follows: its threads share one GIL).

Every wait is bounded and fails with a message saying what did not happen. A
RabbitMQ restart during a round (other test suites restart the shared broker)
spoils that round's timing: the round is thrown away and run again.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pika
from pika.exceptions import AMQPError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus import topology  # noqa: E402
from bus.ledger import Ledger  # noqa: E402
from bus.rabbitmq import RabbitBroker  # noqa: E402
from bus.retry import RetryPolicy  # noqa: E402
from bus.worker import Worker
from core.broker import (  # noqa: E402
    Message,
    PublishError,
    event_message,  # noqa: E402
)
from core.db import make_engine  # noqa: E402
from core.deps import Deps  # noqa: E402
from doppel import migrations  # noqa: E402
from schemas.envelope import Event  # noqa: E402

STEP_TIMEOUT = 120.0  # seconds any one measured step may take before the bench gives up on it
PREFETCH = 100  # unacked deliveries per consumer, raw and Doppel alike (--prefetch)


def cpu_s() -> float:
    """CPU time of this process: per consumed event it is steadier than events/s on a shared machine, and what
    one worker's throughput follows (its threads share one GIL)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Spoiled(RuntimeError):
    """The broker went away (or stalled) during a measurement; that round's numbers mean nothing."""

# ~1 KiB bodies, valid for env.requested's schema (an owner is at most 128 characters: the padding is in
# reply_to, a URL of up to 2,048); an invalid one would be parked unhandled, and the Doppel side never finish
BODY_EVENT = lambda n: Event(type="env.requested", source="bench", data={
    "env": f"env-{n}", "production": "shop", "owner": "x" * 100,
    "reply_to": "https://chat.example/hooks/" + "x" * 559})


def raw_fill(url: str, queue: str, bodies: list[bytes]) -> None:
    """Fill a queue before a consume run (not measured), with confirms so nothing is lost silently."""
    broker = RabbitBroker(url)
    try:
        for start in range(0, len(bodies), 1000):
            broker.publish([Message(exchange="", routing_key=queue, body=body, message_id=str(start + n))
                            for n, body in enumerate(bodies[start:start + 1000])], timeout=STEP_TIMEOUT)
    except PublishError as exc:
        raise Spoiled(f"filling {queue}: {exc}") from exc
    finally:
        broker.close()


def wait_depth(url: str, queue: str, depth: int, timeout=STEP_TIMEOUT) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        while (ready := channel.queue_declare(queue, passive=True).method.message_count) < depth:
            if time.monotonic() > deadline:
                raise Spoiled(f"{queue} holds {ready} messages after {timeout:g} s, not the {depth} confirmed")
            time.sleep(0.1)
    finally:
        if connection.is_open:
            connection.close()


def raw_consume(url: str, queue: str, count: int, idle_timeout: float = 30.0) -> tuple[float, float]:
    """pika BlockingConnection, PREFETCH unacked, one basic.ack per message: events/s, and CPU µs per event."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    seen = 0
    started, cpu_before = time.perf_counter(), cpu_s()
    for method, _props, _body in channel.consume(queue, auto_ack=False, inactivity_timeout=idle_timeout):
        if method is None:
            raise Spoiled(f"raw consume: nothing delivered from {queue} for {idle_timeout:g} s "
                          f"after {seen} of {count}")
        channel.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            break
    elapsed, cpu = time.perf_counter() - started, cpu_s() - cpu_before
    channel.cancel()
    connection.close()
    return count / elapsed, cpu / count * 1e6


def doppel_consume(url: str, count: int, db_dir: str) -> tuple[float, float]:
    """Doppel's worker on a no-op function: events/s, and CPU µs per event."""
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
    retry = RetryPolicy()
    queues = topology.queues_for([function], retry)
    broker = RabbitBroker(url)
    try:
        broker.declare(queues)
        bodies = [event_message(BODY_EVENT(n)) for n in range(count)]
        raw_fill(url, topology.function_queue(name), [m.body for m in bodies])
        wait_depth(url, topology.function_queue(name), count)
        engine = make_engine(f"sqlite:///{db_dir}/bench-{name}.db")
        migrations.upgrade(engine)  # its tables, as a Doppel process finds them
        worker = Worker(broker, [function], Ledger(engine), Deps(), retry=retry, prefetch=PREFETCH)
        started, cpu_before = time.perf_counter(), cpu_s()
        worker.start()
        finished = done.wait(timeout=STEP_TIMEOUT)
        elapsed, cpu = time.perf_counter() - started, cpu_s() - cpu_before
        worker.stop()
        reconnects = broker.reconnects
    finally:
        broker.close()
        delete(url, *(q.name for q in queues))
    if reconnects:
        raise Spoiled(f"Doppel consume: the connection to RabbitMQ dropped {reconnects} time(s) during the run")
    if not finished:
        raise Spoiled(f"Doppel consume: only {handled[0]} of {count} events handled within {STEP_TIMEOUT:g} s")
    return count / elapsed, cpu / count * 1e6


def _worker_process(url: str, name: str, db_path: str, handled, ready, go, stop) -> None:
    """One more `doppel worker`-like process for --processes: its own connection, the shared ledger."""
    def noop(event, deps):
        with handled.get_lock():
            handled.value += 1
        return []
    function = SimpleNamespace(NAME=name, CONSUMES="bench.none", EMITS=(), handle=noop)
    broker = RabbitBroker(url)
    try:
        worker = Worker(broker, [function], Ledger(make_engine(f"sqlite:///{db_path}")), Deps(), retry=RetryPolicy(),
                        prefetch=PREFETCH)
        ready.release()
        go.wait(STEP_TIMEOUT)
        worker.start()
        stop.wait(STEP_TIMEOUT)
        worker.stop()
    finally:
        broker.close()


def doppel_consume_processes(url: str, count: int, db_dir: str, processes: int) -> float:
    """Doppel consume with `processes` worker processes on the same queue and ledger database."""
    import multiprocessing
    context = multiprocessing.get_context("fork")
    handled, ready, go, stop = context.Value("l", 0), context.Semaphore(0), context.Event(), context.Event()
    name = f"noop{uuid.uuid4().hex[:6]}"
    function = SimpleNamespace(NAME=name, CONSUMES="bench.none", EMITS=(), handle=None)
    retry = RetryPolicy()
    queues = topology.queues_for([function], retry)
    broker = RabbitBroker(url)
    children = []
    try:
        broker.declare(queues)
        raw_fill(url, topology.function_queue(name), [event_message(BODY_EVENT(n)).body for n in range(count)])
        wait_depth(url, topology.function_queue(name), count)
        db_path = f"{db_dir}/bench-{name}.db"
        migrations.upgrade(make_engine(f"sqlite:///{db_path}"))  # the tables, before the workers open them
        children = [context.Process(target=_worker_process, args=(url, name, db_path, handled, ready, go, stop))
                    for _ in range(processes)]
        for child in children:
            child.start()
        for _ in children:
            if not ready.acquire(timeout=STEP_TIMEOUT):
                raise Spoiled("Doppel consume: a worker process did not connect")
        started = time.perf_counter()
        go.set()
        deadline = started + STEP_TIMEOUT
        while handled.value < count and time.perf_counter() < deadline:
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        for child in children:
            child.join(30)
        broker.close()
        delete(url, *(q.name for q in queues))
    if handled.value < count:
        raise Spoiled(f"Doppel consume ({processes} processes): only {handled.value} of {count} handled "
                      f"within {STEP_TIMEOUT:g} s")
    return count / elapsed


def raw_publish(url: str, queue: str, bodies: list[bytes], messages: list[Message] | None = None,
                window: int = 1000) -> float:
    """pika SelectConnection with asynchronous confirms, `window` messages in flight. With `messages` (one per
    body), each goes with their properties, built as it is sent (as Doppel builds them in its publish call);
    without, with the persistent flag only."""
    bare = pika.BasicProperties(delivery_mode=2)

    def properties(n: int) -> pika.BasicProperties:
        if messages is None:
            return bare
        m = messages[n]
        return pika.BasicProperties(content_type=m.content_type, delivery_mode=2, message_id=m.message_id,
                                    correlation_id=m.correlation_id, timestamp=m.timestamp,
                                    headers=m.headers or None)
    state = SimpleNamespace(channel=None, sent=0, confirmed=0, started=0.0, elapsed=0.0, error=None)

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        state.channel = channel
        channel.confirm_delivery(on_confirm, callback=on_confirm_mode)

    def on_confirm_mode(_frame):
        # Only messages published after Confirm.SelectOk are confirmed.
        state.started = time.perf_counter()
        pump()

    def pump():
        while state.sent < len(bodies) and state.sent - state.confirmed < window:
            state.channel.basic_publish("", queue, bodies[state.sent], properties(state.sent))
            state.sent += 1

    def on_confirm(frame):
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            stop(Spoiled(f"raw publish: RabbitMQ nacked message {method.delivery_tag}"))
            return
        # Tags are 1..N on this channel and confirms come in order: the highest tag seen counts them all.
        state.confirmed = max(state.confirmed, method.delivery_tag)
        if state.confirmed >= len(bodies):
            state.elapsed = time.perf_counter() - state.started
            stop(None)
        else:
            pump()

    def stop(error):
        if state.error is None:
            state.error = error
        if connection.is_open:
            connection.close()  # on_closed stops the ioloop
        elif connection.is_closed:
            connection.ioloop.stop()

    def on_closed(_connection, reason):
        if not state.elapsed and state.error is None:
            state.error = Spoiled(f"raw publish: connection lost after {state.confirmed} of {len(bodies)} "
                                  f"confirmed ({reason!r})")
        connection.ioloop.stop()

    def on_open_error(_connection, error):
        state.error = Spoiled(f"raw publish: cannot connect ({error!r})")
        connection.ioloop.stop()

    def on_deadline():
        stop(Spoiled(f"raw publish: only {state.confirmed} of {len(bodies)} confirmed within {STEP_TIMEOUT:g} s"))

    connection = pika.SelectConnection(pika.URLParameters(url), on_open_callback=on_open,
                                       on_open_error_callback=on_open_error, on_close_callback=on_closed)
    connection.ioloop.call_later(STEP_TIMEOUT, on_deadline)
    connection.ioloop.start()  # returns once on_closed/on_open_error stopped it
    if state.error is not None:
        raise state.error
    return len(bodies) / state.elapsed


def doppel_publish(url: str, queue: str, events: list[Event], window: int = 1000, callers: int = 1) -> float:
    """Doppel's RabbitBroker.publish from `callers` threads sharing one broker (a worker's handler threads
    publish at once), each call `window // callers` messages and waiting for all its confirms: at most
    `window` in flight, as for raw pika."""
    broker = RabbitBroker(url)
    messages = [event_message(e) for e in events]
    messages = [m.__class__(**{**m.__dict__, "exchange": "", "routing_key": queue}) for m in messages]
    batch = window // callers
    errors: list[BaseException] = []

    def publish_share(share: list[Message]) -> None:
        try:
            for start in range(0, len(share), batch):
                broker.publish(share[start:start + batch], timeout=STEP_TIMEOUT)
        except PublishError as exc:
            errors.append(exc)
    threads = [threading.Thread(target=publish_share, args=(messages[n::callers],)) for n in range(callers)]
    try:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        reconnects = broker.reconnects
    finally:
        broker.close()
    if errors:
        raise Spoiled(f"Doppel publish: {errors[0]}")
    if reconnects:
        raise Spoiled(f"Doppel publish: the connection to RabbitMQ dropped {reconnects} time(s) during the run")
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


def one_round(url: str, events: list[Event], bodies: list[bytes], db_dir: str, processes: int = 1,
              doppel_first: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """raw and Doppel back to back, consume then publish, on fresh queues: the rates, and each side's consume
    CPU per event; `doppel_first` swaps who goes first in each pair (rounds alternate it, so neither side
    always meets the broker as the other left it)."""
    queue = f"bench.raw.{uuid.uuid4().hex[:6]}"
    messages = [event_message(e) for e in events]

    def raw_consume_run() -> tuple[float, float]:
        declare(url, queue)
        raw_fill(url, queue, bodies)
        wait_depth(url, queue, len(bodies))
        return raw_consume(url, queue, len(bodies))

    def raw_publish_run() -> float:
        declare(url, queue)
        return raw_publish(url, queue, bodies, messages)

    def doppel_publish_run() -> float:
        declare(url, queue)
        return doppel_publish(url, queue, events)

    def doppel_publish_two_run() -> float:
        declare(url, queue)
        return doppel_publish(url, queue, events, callers=2)

    consume = [("raw consume", raw_consume_run), ("doppel consume", lambda: doppel_consume(url, len(bodies), db_dir))]
    publish = [("raw publish", raw_publish_run), ("doppel publish", doppel_publish_run),
               ("doppel publish x2", doppel_publish_two_run)]
    if doppel_first:
        consume.reverse()
        publish.reverse()
    try:
        consumed = {name: run() for name, run in consume}
        rates = {name: rate for name, (rate, _cpu) in consumed.items()}
        cpu = {name.split()[0]: cpu for name, (_rate, cpu) in consumed.items()}
        if processes > 1:
            rates[f"doppel consume x{processes}"] = doppel_consume_processes(url, len(bodies), db_dir, processes)
        rates.update({name: run() for name, run in publish})
        declare(url, queue)
        rates["raw publish bare"] = raw_publish(url, queue, bodies)
        return rates, cpu
    finally:
        try:
            delete(url, queue)
        except (AMQPError, ConnectionError):
            pass  # the broker is away; an unused bench queue is harmless


def wait_for_broker(url: str, timeout: float = STEP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            pika.BlockingConnection(pika.URLParameters(url)).close()
            return
        except AMQPError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"RabbitMQ at {url.split('@')[-1]} not back within {timeout:g} s ({exc!r}); "
                                 "tests/services/rabbitmq.sh starts it") from exc
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amqp", default=os.environ.get("DOPPEL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of raw and Doppel, who goes first alternating; best of each")
    parser.add_argument("--processes", type=int, default=1,
                        help="also measure Doppel consume with this many worker processes (a deployment scales "
                             "workers out; the headline ratio is one process against one raw consumer)")
    parser.add_argument("--prefetch", type=int, default=PREFETCH,
                        help="unacked deliveries per consumer, the same for raw pika and Doppel (default 100)")
    parser.add_argument("--max-spoiled", type=int, default=5,
                        help="rounds thrown away (broker restarts) before giving up")
    args = parser.parse_args()
    globals()["PREFETCH"] = args.prefetch
    events = [BODY_EVENT(n) for n in range(args.events)]
    bodies = [e.to_json() for e in events]
    print(f"{args.events} events of {len(bodies[0])} bytes; {args.rounds} rounds, best of each; "
          f"prefetch {PREFETCH}", flush=True)
    with tempfile.TemporaryDirectory() as db_dir:
        results = {"raw consume": [], "doppel consume": [], "raw publish": [], "raw publish bare": [],
                   "doppel publish": [], "doppel publish x2": []}
        if args.processes > 1:
            results[f"doppel consume x{args.processes}"] = []
        cpu_per_event: dict[str, list[float]] = {"raw": [], "doppel": []}  # consume CPU µs per event, by round
        spoiled = 0
        while len(results["raw consume"]) < args.rounds:
            try:
                round_results, round_cpu = one_round(args.amqp, events, bodies, db_dir, args.processes,
                                          doppel_first=len(results["raw consume"]) % 2 == 1)
            except (Spoiled, PublishError, AMQPError, ConnectionError) as exc:
                spoiled += 1
                print(f"round spoiled ({type(exc).__name__}: {exc}); waiting for RabbitMQ and running it again",
                      flush=True)
                if spoiled > args.max_spoiled:
                    raise SystemExit(f"gave up after {spoiled} spoiled rounds; is RabbitMQ being restarted "
                                     "in a loop? (tests/services/rabbitmq.sh starts it)") from None
                wait_for_broker(args.amqp)
                continue
            for side, cpu in round_cpu.items():  # a spoiled round's figures are not kept
                cpu_per_event[side].append(cpu)
            for name, rate in round_results.items():
                results[name].append(rate)
            print("  " + ", ".join(f"{name} {rate:.0f}/s" for name, rate in round_results.items()), flush=True)
    best = {name: max(rates) for name, rates in results.items()}
    for name, rate in best.items():
        print(f"{name:<18} {rate:10.0f} events/s")
    # Each round's ratio compares runs seconds apart; best-of pairs may come from different rounds, which on a
    # shared machine can differ by 3x, so the per-round median is the number to quote.
    for what, doppel, raw, label in (("consume", "doppel consume", "raw consume", "Doppel worker / raw pika"),
                                     ("publish", "doppel publish", "raw publish",
                                      "Doppel, one caller, calls of 1,000 / raw async confirms, the same messages"),
                                     ("publish", "doppel publish x2", "raw publish",
                                      "Doppel, two callers, calls of 500 / raw, the same messages"),
                                     ("publish", "doppel publish", "raw publish bare",
                                      "for reference: / raw with bare messages")):
        per_round = [d / r for d, r in zip(results[doppel], results[raw])]
        print(f"{what} ratio ({label}): median of rounds {statistics.median(per_round):.2f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in per_round)}; best-of {best[doppel] / best[raw]:.2f})")
    raw_cpu, doppel_cpu = (statistics.median(cpu_per_event[side]) for side in ("raw", "doppel"))
    print(f"consume CPU of this process per event, median of rounds: raw pika {raw_cpu:.0f} µs, Doppel "
          f"{doppel_cpu:.0f} µs ({raw_cpu / doppel_cpu:.2f} of Doppel's is raw's; rounds: raw "
          f"{', '.join(f'{x:.0f}' for x in cpu_per_event['raw'])}; Doppel "
          f"{', '.join(f'{x:.0f}' for x in cpu_per_event['doppel'])})")
    if args.processes > 1:
        scaled = f"doppel consume x{args.processes}"
        per_round = [d / r for d, r in zip(results[scaled], results["raw consume"])]
        print(f"consume ratio ({args.processes} Doppel worker processes / one raw pika consumer): median of rounds "
              f"{statistics.median(per_round):.2f} (rounds {', '.join(f'{x:.2f}' for x in per_round)})")


if __name__ == "__main__":
    main()
