"""The worker's promises under failure, on a real RabbitMQ with real worker processes."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bus.rabbitmq import RabbitBroker
from core.broker import PublishError, event_message
from schemas.envelope import Event
from tests.support.rabbitmq import node_stopped
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[2]


def start_worker(tmp_path, amqp_url, functions, *extra):
    env = {**os.environ, "DOPPEL_AMQP_URL": amqp_url, "DOPPEL_DB_URL": f"sqlite:///{tmp_path / 'doppel.db'}",
           "PYTHONPATH": str(ROOT)}
    effects = tmp_path / "effects.log"
    process = subprocess.Popen([sys.executable, "-m", "tests.support.worker_process", str(effects), functions,
                                *extra], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / f"worker-{time.monotonic_ns()}.log", "w"))
    wait_for(lambda: f"ready pid {process.pid}" in read(effects), 30, f"worker {process.pid} to start")
    return process


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def messages_left(amqp_url: str, function: str) -> int:
    """Ready plus unacknowledged messages in a function's queue and its delay queues, as RabbitMQ counts them."""
    vhost = unquote(urlsplit(amqp_url).path[1:])
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name",
                             "messages"], capture_output=True, text=True, check=True).stdout
    queue = f"doppel.fn.{function}"
    return sum(int(count) for name, count in (line.split() for line in listed.splitlines())
               if name.startswith(queue) and not name.endswith(".dead"))


def request(env="perf-test", **extra):
    return Event(type="env.requested", source="test", data={"env": env, "production": "shop", **extra})


def test_kill_9_in_a_slow_function_another_worker_completes_it_once(tmp_path, amqp_url):
    # Given two workers serving a slow function, with a short lease
    first = start_worker(tmp_path, amqp_url, "slow", "--lease", "3", "--prefetch", "1")
    second = start_worker(tmp_path, amqp_url, "slow", "--lease", "3", "--prefetch", "1")
    workers = {first.pid: first, second.pid: second}
    effects = tmp_path / "effects.log"
    broker = RabbitBroker(amqp_url)
    event = request(owner="4")  # the slow function sleeps this many seconds
    try:
        broker.publish([event_message(event)])
        wait_for(lambda: f"started {event.id}" in read(effects), 20, "the function to start")
        victim = int(read(effects).split(f"started {event.id} pid ")[1].split()[0])

        # When the worker running it is killed mid-function
        workers[victim].kill()
        workers[victim].wait()
        survivor = next(pid for pid in workers if pid != victim)

        # Then the other worker completes it, once
        wait_for(lambda: f"done {event.id}" in read(effects), 40, "the survivor to finish the function")
        # a sentinel behind it, through the same queue: a wrong second run would come before it
        sentinel = request(owner="0")
        broker.publish([event_message(sentinel)])
        wait_for(lambda: f"done {sentinel.id}" in read(effects), 40, "the sentinel to be handled")
        lines = [l for l in read(effects).splitlines() if sentinel.id not in l]
        assert [l for l in lines if l.startswith("done")] == [f"done {event.id} pid {survivor}"]
        assert sum(l.startswith("started") for l in lines) == 2
    finally:
        broker.close()
        for process in workers.values():
            process.kill()
            process.wait()


def test_broker_restart_under_5000_events_leaves_each_handled_exactly_once(tmp_path, amqp_url):
    # Given a worker counting every run of its function
    worker = start_worker(tmp_path, amqp_url, "count", "--prefetch", "64")
    effects = tmp_path / "effects.log"
    broker = RabbitBroker(amqp_url)
    events = [request(f"env-{n}") for n in range(5000)]
    published, refused = [], []

    def publish_all():
        for start in range(0, len(events), 100):
            batch = events[start:start + 100]
            while True:
                try:
                    broker.publish([event_message(e) for e in batch])
                    break
                except PublishError as exc:
                    refused.append(exc)
                    time.sleep(0.5)  # the broker is away: publish the same batch again
            published.extend(batch)
            time.sleep(0.01)

    try:
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        # When the broker restarts while events are being published and consumed
        wait_for(lambda: len(published) >= 1500, 60, "1,500 events to be published")
        with node_stopped():
            wait_for(lambda: refused or not publisher.is_alive(), 60, "the publisher to meet the outage")
        publisher.join(timeout=180)
        assert not publisher.is_alive(), "publishing did not finish after the restart"

        # Then every event is handled exactly once in effect
        ran = lambda: [l for l in read(effects).splitlines() if l.startswith("ran ")]
        wait_for(lambda: len(set(ran())) == 5000, 180, "all 5,000 events to be handled")
        # nothing left to run again: RabbitMQ holds no message of the function, ready, unacked or delayed
        wait_for(lambda: messages_left(amqp_url, "count") == 0, 60, "the function's queues to be empty")
        runs = ran()
        assert len(set(runs)) == 5000 and {l.split()[1] for l in runs} == {e.id for e in events}
        assert len(runs) == 5000, f"{len(runs) - 5000} events ran twice"
    finally:
        broker.close()
        worker.kill()
        worker.wait()


def test_a_slow_handler_does_not_hold_up_the_events_that_arrived_with_it(tmp_path, amqp_url):
    from bus import topology
    from bus.worker import Worker
    from tests.harness import Bus, make_function
    bus = Bus("rabbitmq", tmp_path, amqp_url)
    release, finished = threading.Event(), {}

    def handle(event, deps):
        if event.data["env"] == "slow":
            release.wait(30)
        finished[event.data["env"]] = True
        return []
    function = make_function(f"batch{bus.prefix}", "env.requested", handle)
    worker = Worker(bus.broker(), [function], bus.ledger, bus.deps, retry=bus.retry, prefetch=16,
                    reporter=bus.reporter)
    bus.workers.append(worker)
    try:
        # Given six events delivered together from RabbitMQ, the slow one first
        worker.declare()
        events = [request("slow")] + [request(f"quick-{n}") for n in range(5)]
        worker.broker.publish([event_message(e) for e in events])
        queue = topology.function_queue(function.NAME)
        wait_for(lambda: worker.broker.depth(queue) == 6, 10, "six events in the queue")
        batch = [worker.broker.get(queue) for _ in events]
        worker.start()  # its watchdog and helpers (the queue is empty now)

        # When the worker handles them as one batch
        handling = threading.Thread(target=worker.on_deliveries, args=(function, batch))
        handling.start()

        # Then the five quick ones are handled, recorded done and acked while the slow one still runs
        wait_for(lambda: len(finished) == 5, 10, "the five quick events")
        assert "slow" not in finished
        wait_for(lambda: all(d.settled for d in batch[1:]), 10, "five acks")
        assert {e.event_id: e.status for e in bus.ledger.entries()} == {
            **{e.id: "done" for e in events[1:]}, events[0].id: "running"}
        release.set()
        handling.join(10)
        assert len(finished) == 6 and batch[0].settled
        assert all(e.status == "done" for e in bus.ledger.entries())
    finally:
        release.set()
        bus.close()


def test_an_over_long_correlation_id_from_a_foreign_client_is_parked_at_once_in_either_mode(tmp_path, amqp_url):
    import json

    import pika

    from bus import topology
    from core.broker import EXCHANGE, H_ERROR, H_ERROR_KIND
    # Given a worker serving `count` (one line per run) and a client that is not Doppel
    worker = start_worker(tmp_path, amqp_url, "count")
    effects = tmp_path / "effects.log"
    broker = RabbitBroker(amqp_url)
    client = pika.BlockingConnection(pika.URLParameters(amqp_url))
    too_long = "chain-" + "c" * 294  # 300 bytes: fine in a body or a header value, not as an AMQP correlation-id
    attributes = {"specversion": "1.0", "source": "https://ci.example/jobs/7", "type": "env.requested"}
    try:
        # When it publishes an env.requested with that correlationid in structured mode, and one in binary mode
        channel = client.channel()
        channel.confirm_delivery()
        structured = {**attributes, "id": "structured-1", "correlationid": too_long,
                      "data": {"env": "perf-test", "production": "shop"}}
        channel.basic_publish(EXCHANGE, "env.requested", json.dumps(structured).encode(), pika.BasicProperties(
            content_type="application/cloudevents+json", message_id="structured-1", delivery_mode=2))
        binary_headers = {f"ce-{name}": value for name, value in
                          {**attributes, "id": "binary-1", "correlationid": too_long}.items()}
        channel.basic_publish(EXCHANGE, "env.requested", b'{"env": "perf-test", "production": "shop"}',
                              pika.BasicProperties(content_type="application/json", message_id="binary-1",
                                                   headers=binary_headers, delivery_mode=2))

        # Then both are parked within seconds as invalid, the reason naming the field and its length
        dead = topology.dead_queue("count")
        wait_for(lambda: broker.depth(dead) == 2, 10, "both messages to be parked")
        parked = [broker.get(dead) for _ in range(2)]
        for delivery in parked:
            delivery.nack(requeue=True)
        assert sorted(d.message.message_id for d in parked) == ["binary-1", "structured-1"]
        for delivery in parked:
            assert delivery.message.headers[H_ERROR_KIND] == "invalid"
            assert "attribute 'correlationid' is 300 bytes of UTF-8; at most 255" in delivery.message.headers[H_ERROR]

        # And the worker goes on: the next event is handled, and neither parked one ever ran
        sentinel = request()
        broker.publish([event_message(sentinel)])
        wait_for(lambda: f"ran {sentinel.id}" in read(effects), 10, "the sentinel to be handled")
        assert [line for line in read(effects).splitlines() if line.startswith("ran ")] == [f"ran {sentinel.id}"]
        assert broker.depth(topology.function_queue("count")) == 0
    finally:
        client.close()
        broker.close()
        worker.kill()
        worker.wait()
