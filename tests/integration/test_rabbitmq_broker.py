"""RabbitBroker against a real RabbitMQ: routing, confirms, redelivery, TTL dead-lettering, heartbeats, outages.

RabbitMQ comes from tests/services/rabbitmq.sh (the session's `rabbitmq_server`
fixture). This file has one vhost of its own; a vhost per test would cost ~2 s of
rabbitmqctl each. Tests stay apart by queue names: each test declares queues no
other test uses, so nothing published earlier can be in them. The restart test
stops and starts the whole node's app: suites running at that moment see the
outage too.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from urllib.parse import quote, unquote, urlsplit

import pytest

from bus.rabbitmq.amqp import BrokerUnavailable, MissingQueue, safe_url
from bus.rabbitmq.broker import RabbitBroker
from core.broker import DEFAULT_EXCHANGE, Message, PublishError, QueueSpec, Unsendable
from tests.support.rabbitmq import fresh_vhost, node_stopped, rabbitmqctl
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq


# -- helpers ----------------------------------------------------------------------

def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path[1:])


def with_heartbeat(url: str, seconds: int) -> str:
    return urlsplit(url)._replace(query=f"heartbeat={seconds}").geturl()


def event(routing_key: str, n: int = 0, **extra) -> Message:
    return Message(routing_key=routing_key, body=f'{{"n": {n}}}'.encode(),
                   message_id=f"{routing_key}-{n}-{uuid.uuid4().hex[:6]}", **extra)


def to_queue(queue: str, n: int = 0) -> Message:
    return Message(exchange=DEFAULT_EXCHANGE, routing_key=queue, body=b"{}", message_id=f"{queue}-{n}")


def on_io_thread(broker: RabbitBroker, action) -> None:
    """Run `action` on the broker's I/O thread, between two of its callbacks (for injecting a fault)."""
    done = threading.Event()
    broker._call_soon(lambda: (action(), done.set()))
    assert done.wait(5), "the I/O thread did not run the action"


def drain(broker: RabbitBroker, queue: str) -> list[Message]:
    taken = []
    while (delivery := broker.get(queue)) is not None:
        taken.append(delivery.message)
        delivery.ack()
    return taken


class Recorder:
    """A handler that remembers what it was given, thread-safely; acks unless told not to."""

    def __init__(self, ack: bool = True, sleep: float = 0.0):
        self.ack, self.sleep = ack, sleep
        self.deliveries = []
        self.lock = threading.Lock()

    def __call__(self, delivery) -> None:
        time.sleep(self.sleep)
        with self.lock:
            self.deliveries.append(delivery)
        if self.ack:
            delivery.ack()

    def ids(self) -> set[str]:
        with self.lock:
            return {d.message.message_id for d in self.deliveries}

    def count(self) -> int:
        with self.lock:
            return len(self.deliveries)


@pytest.fixture(scope="module")
def vhost_url(rabbitmq_server):
    """An AMQP URL on a vhost of this file's own, deleted at the end."""
    vhost = fresh_vhost("doppel-broker-test-")
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@{rabbitmq_server}/{quote(vhost, safe='')}?heartbeat=10"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def brokers(vhost_url):
    """RabbitBrokers on this file's vhost, all closed at the end of the test."""
    made: list[RabbitBroker] = []

    def make(url: str = vhost_url, **options) -> RabbitBroker:
        made.append(RabbitBroker(url, **options))
        return made[-1]
    yield make
    for broker in made:
        broker.close()


# -- routing and publishing -------------------------------------------------------

def test_topic_patterns_route_each_type_to_the_queues_that_match(brokers):
    # Given queues bound with exact, `*` and `#` patterns
    broker = brokers()
    broker.declare([QueueSpec("star", "quorum", ("env.*",)), QueueSpec("hash", "quorum", ("env.#",)),
                    QueueSpec("done", "classic", ("#.done",)), QueueSpec("exact", "classic", ("backup.done",))])

    # When events of several types are published (one type bound by nobody)
    sent = [event("env.requested", 1), event("env.stack.ready", 2), event("env", 3), event("backup.done", 4),
            event("drill.due", 5)]
    broker.publish(sent)

    # Then each queue holds exactly the types its patterns match
    routed = {queue: [m.routing_key for m in drain(broker, queue)] for queue in ("star", "hash", "done", "exact")}
    assert routed == {"star": ["env.requested"], "hash": ["env.requested", "env.stack.ready", "env"],
                      "done": ["backup.done"], "exact": ["backup.done"]}


def test_amqp_properties_survive_the_round_trip(brokers):
    broker = brokers()
    broker.declare([QueueSpec("props", "quorum", ("env.requested",))])
    sent = event("env.requested", headers={"x-doppel-attempt": 2, "note": "ü"}, timestamp=1_700_000_000,
                 correlation_id="chain-1")

    broker.publish([sent])
    delivery = broker.get("props")

    got = delivery.message
    assert (got.message_id, got.body, got.timestamp, got.correlation_id, got.content_type, got.exchange,
            got.routing_key) == (sent.message_id, sent.body, 1_700_000_000, "chain-1",
                                 "application/cloudevents+json", "doppel.events", "env.requested")
    # quorum queues add x-delivery-count; ours come through as sent
    assert {k: v for k, v in got.headers.items() if k != "x-delivery-count"} == {"x-doppel-attempt": 2, "note": "ü"}
    assert delivery.redelivered is False
    delivery.ack()


def test_publish_to_a_missing_queue_raises_and_the_broker_keeps_publishing(brokers):
    # Given one queue that exists
    broker = brokers()
    broker.declare([QueueSpec("exists", "quorum")])

    # When a batch names a queue that does not exist
    with pytest.raises(PublishError, match="no queue 'missing'"):
        broker.publish([to_queue("exists", 1), to_queue("missing", 2)])

    # Then the next publish works, and the good message of the failed batch was still enqueued
    broker.publish([to_queue("exists", 3)])
    assert [m.message_id for m in drain(broker, "exists")] == ["exists-1", "exists-3"]


def test_an_unsendable_message_between_two_valid_ones_leaves_the_confirms_in_step(brokers):
    # Given a queue
    broker = brokers()
    broker.declare([QueueSpec("in-step", "quorum")])

    # When a valid message, one whose id is too long for AMQP, and another valid one are published
    broker.publish([to_queue("in-step", 1)], timeout=5)
    with pytest.raises(Unsendable) as refused:
        broker.publish([Message(exchange=DEFAULT_EXCHANGE, routing_key="in-step", body=b"{}", message_id="x" * 300)],
                       timeout=5)
    broker.publish([to_queue("in-step", 3)], timeout=5)  # a confirm out of step would never come: it would raise

    # Then the middle one is refused naming the field, the next is confirmed, and only the valid are queued
    assert (refused.value.field, refused.value.length, refused.value.limit) == ("message_id", 300, 255)
    assert [m.message_id for m in drain(broker, "in-step")] == ["in-step-1", "in-step-3"]
    state = broker.publisher_state()
    assert state["ok"] and state["unconfirmed"] == 0 and state["channels_opened"] == 1


def test_a_message_pika_refuses_after_the_check_leaves_the_count_of_sent_messages_true(brokers, monkeypatch):
    # Given a check that lets everything through, as if it missed a case pika cannot write
    monkeypatch.setattr("bus.rabbitmq.broker.check_sendable", lambda message, frame_max: None)
    broker = brokers()
    broker.declare([QueueSpec("pika-refuses", "quorum")])
    too_long = Message(exchange=DEFAULT_EXCHANGE, routing_key="pika-refuses", body=b"{}", message_id="pika-refuses-2",
                       correlation_id="c" * 300)

    # When pika refuses the second message of a batch
    with pytest.raises(Unsendable, match="refused by pika.*nothing of it was sent; 1 earlier message"):
        broker.publish([to_queue("pika-refuses", 1), too_long, to_queue("pika-refuses", 3)], timeout=5)

    # Then later publishes are confirmed at once, on the same channel, and the queue holds what went out
    for n in (4, 5):
        broker.publish([to_queue("pika-refuses", n)], timeout=5)  # raises if their confirms never match
    assert [m.message_id for m in drain(broker, "pika-refuses")] == ["pika-refuses-1", "pika-refuses-4",
                                                                     "pika-refuses-5"]
    assert broker.publisher_state()["channels_replaced"] == 0


def test_confirms_that_stop_matching_make_the_publisher_unhealthy_until_its_channel_is_replaced(brokers, monkeypatch):
    monkeypatch.setattr("bus.rabbitmq.broker.CONFIRM_OVERDUE_S", 0.2)
    monkeypatch.setattr("bus.rabbitmq.broker.CONFIRM_GIVE_UP_S", 2.0)
    broker = brokers()
    broker.declare([QueueSpec("drift", "quorum")])
    broker.publish([to_queue("drift", 1)], timeout=5)
    assert broker.publisher_state()["ok"]

    # Given the publisher's count one ahead of RabbitMQ's (the state a failed publish used to leave it in)
    publisher = broker._publisher
    on_io_thread(broker, lambda: setattr(publisher, "_last_tag", publisher._last_tag + 1))

    # When a message is published, whose confirm can then never match it
    outcome: dict = {}

    def publish() -> None:
        try:
            broker.publish([to_queue("drift", 2)], timeout=10)
        except PublishError as exc:
            outcome["error"] = exc
    caller = threading.Thread(target=publish)
    caller.start()

    # Then /health's source says so while it waits, and the channel is replaced: the caller hears the truth
    wait_for(lambda: "waited" in broker.publisher_state().get("problem", ""), 5, "the overdue confirm to be reported")
    caller.join(10)
    assert "replaced" in str(outcome.get("error")) and "may or may not have been enqueued" in str(outcome["error"])
    wait_for(lambda: broker.publisher_state()["ok"], 5, "a new publish channel")
    assert broker.publisher_state()["channels_replaced"] == 1
    broker.publish([to_queue("drift", 3)], timeout=5)
    assert [m.message_id for m in drain(broker, "drift")] == ["drift-1", "drift-2", "drift-3"]


def test_a_confirm_for_a_message_never_sent_replaces_the_channel_at_once(brokers):
    broker = brokers()
    broker.declare([QueueSpec("behind", "quorum")])
    broker.publish([to_queue("behind", 1)], timeout=5)

    # Given the publisher's count one behind RabbitMQ's
    publisher = broker._publisher
    on_io_thread(broker, lambda: setattr(publisher, "_last_tag", publisher._last_tag - 1))

    # When a message is published, RabbitMQ confirms a number this channel never handed out
    with pytest.raises(PublishError, match="confirmed message 2, but this channel sent only 1"):
        broker.publish([to_queue("behind", 2)], timeout=5)

    # Then that is noticed when the confirm arrives (the error says so, not the timeout), and a new channel
    # confirms the next message
    wait_for(lambda: broker.publisher_state()["ok"], 5, "a new publish channel")
    broker.publish([to_queue("behind", 3)], timeout=5)
    assert [m.message_id for m in drain(broker, "behind")] == ["behind-1", "behind-2", "behind-3"]
    assert broker.publisher_state()["channels_replaced"] == 1


def test_many_messages_are_confirmed_in_flight_together_not_one_round_trip_each(brokers):
    # How fast is measured by bench/bus_throughput.py against a baseline; here, that one publish of 10,000 is
    # confirmed whole.
    broker = brokers()
    broker.declare([QueueSpec("bulk", "classic")])
    broker.publish([to_queue("bulk", n) for n in range(10_000)])
    assert broker.depth("bulk") == 10_000


def test_get_depth_and_purge_and_their_errors_on_a_missing_queue(brokers):
    broker = brokers()
    broker.declare([QueueSpec("parked", "quorum")])
    broker.publish([to_queue("parked", n) for n in range(3)])
    wait_for(lambda: broker.depth("parked") == 3, 5, "3 messages ready")

    first = broker.get("parked")
    assert (first.message.message_id, first.redelivered) == ("parked-0", False)
    first.nack(requeue=True)
    with pytest.raises(RuntimeError, match="settled twice"):
        first.ack()
    taken = []
    while (delivery := broker.get("parked")) is not None:  # left unacked, as `doppel dlq` does
        taken.append(delivery)
    assert sorted((d.message.message_id, d.redelivered) for d in taken) == [
        ("parked-0", True), ("parked-1", False), ("parked-2", False)]

    broker.publish([to_queue("parked", n) for n in range(3, 5)])
    assert broker.purge("parked") == 2  # the unacked ones are not purged
    for delivery in taken:
        delivery.ack()
    for call in (broker.depth, broker.purge, broker.get, lambda queue: broker.consume(queue, Recorder())):
        with pytest.raises(MissingQueue, match="no queue 'nowhere'"):
            call("nowhere")
    assert broker.depth("parked") == 0  # each error closed only its own channel


def test_redeclaring_a_queue_with_other_arguments_raises_and_names_the_conflict(brokers):
    broker = brokers()
    broker.declare([QueueSpec("fn.snapshot", "quorum")])
    broker.declare([QueueSpec("fn.snapshot", "quorum")])  # idempotent
    with pytest.raises(PublishError, match="PRECONDITION_FAILED.*x-queue-type"):
        broker.declare([QueueSpec("fn.snapshot", "classic")])
    broker.publish([to_queue("fn.snapshot")])  # the broker is still usable


# -- consuming ----------------------------------------------------------------------

def test_unacked_messages_are_redelivered_flagged_after_their_consumer_closes(brokers):
    # Given a consumer that takes messages and never settles them
    first = brokers()
    first.declare([QueueSpec("work", "quorum", ("env.requested",))])
    sloppy = Recorder(ack=False)
    first.consume("work", sloppy, prefetch=10)
    first.publish([event("env.requested", n) for n in range(3)])
    wait_for(lambda: sloppy.count() == 3, 5, "3 deliveries")
    assert not any(d.redelivered for d in sloppy.deliveries)

    # When its connection closes, and it acks too late
    first.close()
    sloppy.deliveries[0].ack()  # a logged no-op, not an error

    # Then another consumer gets all three again, flagged redelivered
    second = brokers()
    careful = Recorder()
    second.consume("work", careful, prefetch=10)
    wait_for(lambda: careful.count() == 3, 5, "3 redeliveries")
    assert careful.ids() == sloppy.ids()
    assert all(d.redelivered for d in careful.deliveries)
    wait_for(lambda: second.depth("work") == 0, 5, "the queue to empty")


def test_a_handler_that_raises_gets_its_message_back(brokers):
    broker = brokers()
    broker.declare([QueueSpec("flaky", "quorum")])
    calls = []

    def fails_once(delivery):
        calls.append(delivery.redelivered)
        if len(calls) == 1:
            raise ValueError("bug in a handler")
        delivery.ack()
    broker.consume("flaky", fails_once, prefetch=1)
    broker.publish([to_queue("flaky")])
    wait_for(lambda: len(calls) == 2, 5, "the second delivery")
    assert calls == [False, True]


def test_a_batch_consumer_gets_what_arrived_together_and_settles_each_delivery_alone(brokers):
    # Given 50 messages waiting before anyone consumes
    broker = brokers()
    broker.declare([QueueSpec("batched", "quorum")])
    broker.publish([to_queue("batched", n) for n in range(50)])
    batches, lock = [], threading.Lock()

    def handle(deliveries):
        with lock:
            batches.append([d.message.message_id for d in deliveries])
        for delivery in deliveries:  # every other one is put back once
            if delivery.redelivered or int(delivery.message.message_id.split("-")[-1]) % 2 == 0:
                delivery.ack()
            else:
                delivery.nack(requeue=True)

    # When a batch consumer with room for all of them starts
    broker.consume_batches("batched", handle, prefetch=50)
    wait_for(lambda: sum(map(len, batches)) == 75, 10, "50 deliveries and 25 redeliveries")

    # Then they came in fewer calls than messages, each message once per delivery, and the nacked ones again
    assert len(batches) < 50
    delivered = [m for batch in batches for m in batch]
    assert sorted(set(delivered)) == sorted(f"batched-{n}" for n in range(50))
    assert all(delivered.count(f"batched-{n}") == (1 if n % 2 == 0 else 2) for n in range(50))
    # a sentinel behind them: once it is delivered, nothing nacked is left to come again
    broker.publish([to_queue("batched", 98)])  # even: acked at once
    wait_for(lambda: "batched-98" in [m for batch in batches for m in batch], 10, "the sentinel")
    assert broker.depth("batched") == 0 and sum(map(len, batches)) == 76


def test_single_active_consumer_queue_feeds_one_consumer_only(brokers):
    # Given two brokers consuming one single-active-consumer queue (the scheduler's lease)
    leader, follower = brokers(), brokers()
    leader.declare([QueueSpec("lease", "quorum", single_active_consumer=True)])
    first, second = Recorder(), Recorder()
    leader.consume("lease", first, prefetch=5)
    follower.consume("lease", second, prefetch=5)

    # When messages arrive
    leader.publish([to_queue("lease", n) for n in range(10)])

    # Then one consumer gets all of them
    wait_for(lambda: first.count() + second.count() == 10, 5, "10 deliveries")
    assert sorted([first.count(), second.count()]) == [0, 10]


def test_expired_messages_move_to_the_dead_letter_queue_after_the_ttl(brokers, vhost_url):
    # Given a delay queue with a 1.5 s TTL dead-lettering into a function queue
    broker = brokers()
    broker.declare([QueueSpec("fn.retry.1", "classic", message_ttl_ms=1500, dead_letter_to="fn"),
                    QueueSpec("fn", "quorum")])
    arrived = {}
    broker.consume("fn", lambda d: (arrived.setdefault(d.message.message_id, d.message), d.ack()), prefetch=1)

    # When a message is put in the delay queue
    broker.publish([to_queue("fn.retry.1", 7)])

    # Then it reaches the function queue, dead-lettered by RabbitMQ because it expired there (its own record),
    # from a queue RabbitMQ holds with that TTL and that target (how long the wait lasts is RabbitMQ's to keep,
    # and not a thing to time on a loaded machine)
    wait_for(lambda: "fn.retry.1-7" in arrived, 10, "the dead-lettered message")
    (death,) = arrived["fn.retry.1-7"].headers["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("expired", "fn.retry.1", 1)
    listed = json.loads(rabbitmqctl("list_queues", "-p", vhost_of(vhost_url), "name", "arguments",
                                    "--formatter", "json"))
    arguments = next({name: value for name, _kind, value in q["arguments"]}
                     for q in listed if q["name"] == "fn.retry.1")
    assert (arguments["x-message-ttl"], arguments["x-dead-letter-exchange"],
            arguments["x-dead-letter-routing-key"]) == (1500, "", "fn")


def test_a_handler_longer_than_two_heartbeats_keeps_the_connection(brokers, vhost_url):
    # Given a connection with a 2 s heartbeat and a handler that takes 7 s (RabbitMQ drops a
    # connection after 2-3 silent heartbeat periods; 5 s was not always enough to notice)
    url = with_heartbeat(vhost_url, 2)
    broker = brokers(url)
    assert "\t2\n" in rabbitmqctl("list_connections", "-p", vhost_of(url), "name", "timeout")
    broker.declare([QueueSpec("slow", "quorum"), QueueSpec("side", "quorum")])
    slow = Recorder(sleep=7)
    broker.consume("slow", slow, prefetch=1)

    # When the handler runs
    broker.publish([to_queue("slow")])
    wait_for(lambda: slow.count() == 1, 10, "the slow handler to finish")

    # Then the connection survived: no reconnect, the ack counted, and publishing still works
    assert broker.reconnects == 0
    broker.publish([to_queue("side")])
    broker.close()
    other = brokers()
    assert other.depth("slow") == 0
    assert other.depth("side") == 1


# -- outages --------------------------------------------------------------------------

def test_server_closing_the_connection_restores_topology_and_consumer(brokers, vhost_url):
    # Given a consumer on a declared queue
    broker = brokers()
    broker.declare([QueueSpec("fn.clone", "quorum", ("stack.ready",))])
    seen = Recorder()
    broker.consume("fn.clone", seen, prefetch=4)

    # When an operator deletes the queue and RabbitMQ drops our connection
    vhost = vhost_of(vhost_url)
    rabbitmqctl("delete_queue", "-p", vhost, "fn.clone")
    rabbitmqctl("close_all_connections", "-p", vhost, "test: connection dropped")

    # Then the broker reconnects, declares the queue and its binding again, and consumes
    wait_for(lambda: broker.reconnects >= 1, 10, "the reconnect")
    broker.publish([event("stack.ready", 1)])
    wait_for(lambda: seen.count() == 1, 10, "the delivery after reconnect")


def test_a_late_ack_from_before_a_reconnect_does_not_ack_the_redelivered_copy(brokers, vhost_url):
    # Given a delivery taken and not yet acked
    broker = brokers()
    broker.declare([QueueSpec("fn.configure", "quorum")])
    held = Recorder(ack=False)
    broker.consume("fn.configure", held, prefetch=1)
    broker.publish([to_queue("fn.configure")])
    wait_for(lambda: held.count() == 1, 5, "the first delivery")

    # When the connection drops, the message comes again on the new channel (same delivery tag),
    # and only then does the first delivery's ack arrive
    rabbitmqctl("close_all_connections", "-p", vhost_of(vhost_url), "test: connection dropped")
    wait_for(lambda: held.count() == 2, 10, "the redelivery after reconnect")
    held.deliveries[0].ack()

    # Then that ack was dropped: the redelivered copy is still unacked, and returns when we leave
    broker.close()
    assert brokers().depth("fn.configure") == 1


def test_broker_restart_while_publishing_and_consuming_loses_no_confirmed_message(brokers):
    # Given a publisher thread and a consumer, both busy
    publisher, consumer = brokers(), brokers()
    publisher.declare([QueueSpec("fn.count", "quorum", ("count.#",))])
    received = Recorder()
    consumer.consume("fn.count", received, prefetch=32)
    confirmed: set[str] = set()
    failures = []
    stop = threading.Event()

    def publish_forever() -> None:
        n = 0
        while not stop.is_set():
            batch = [event("count.tick", n + i) for i in range(20)]
            n += 20
            try:
                publisher.publish(batch, timeout=20)
                confirmed.update(m.message_id for m in batch)
            except PublishError as exc:
                failures.append(exc)  # unconfirmed: may or may not arrive
    thread = threading.Thread(target=publish_forever)
    thread.start()
    try:
        wait_for(lambda: len(confirmed) >= 200, 10, "traffic before the restart")

        # When the node's app stops and starts again
        with node_stopped():
            # a publish during the outage fails (its wait is bounded): BrokerUnavailable once the connection is
            # known lost, or "closed before RabbitMQ confirmed" if it went out on the connection being reset
            with pytest.raises(PublishError):
                publisher.publish([event("count.outage")], timeout=1)
            before_restart = len(confirmed)

        # Then publishing resumes by itself
        wait_for(lambda: len(confirmed) >= before_restart + 200, 30, "confirms after the restart")
    finally:
        stop.set()
        thread.join(30)

    # And consumption resumes: every confirmed message arrives, none lost
    wait_for(lambda: confirmed <= received.ids(), 30, "every confirmed message to be consumed")
    assert publisher.reconnects >= 1 and consumer.reconnects >= 1
    assert len(failures) <= 3, failures  # only batches in flight at the moment the node stopped


def test_unreachable_rabbitmq_fails_fast_with_a_url_without_its_password():
    with pytest.raises(BrokerUnavailable) as raised:  # with connect_timeout 0.5 s: no retrying for minutes
        RabbitBroker("amqp://guest:s3cret@127.0.0.1:1/%2F", connect_timeout=0.5)
    assert "s3cret" not in str(raised.value) and "guest:***@127.0.0.1:1" in str(raised.value)
    assert safe_url("amqp://u:p@h:5672/v?heartbeat=2") == "amqp://u:***@h:5672/v?heartbeat=2"


# -- bounded redelivery and the upgrade path ---------------------------------------------

def test_a_message_put_back_again_and_again_is_parked_by_rabbitmq_saying_why(brokers):
    from types import SimpleNamespace

    from bus import topology
    from bus.retry import RetryPolicy
    from doppel.cli.bus import _describe
    # Given a function's queues, and a consumer that puts every message back (a bug that escapes the worker)
    broker = brokers()
    name = f"loop{uuid.uuid4().hex[:6]}"
    broker.declare(topology.queues_for([SimpleNamespace(NAME=name, CONSUMES="loop.tick")], RetryPolicy(attempts=2)))
    deliveries = Recorder(ack=False)

    def put_back(delivery):
        deliveries(delivery)
        delivery.nack(requeue=True)
    broker.consume(topology.function_queue(name), put_back, prefetch=1)

    # When a message arrives
    broker.publish([event("loop.tick", 1)])

    # Then it is delivered DELIVERY_LIMIT + 1 times, no more, and parked by RabbitMQ with why
    dead = topology.dead_queue(name)
    wait_for(lambda: broker.depth(dead) == 1, 20, "the message to be parked")
    assert deliveries.count() == topology.DELIVERY_LIMIT + 1
    parked = broker.get(dead)
    info = _describe(parked)
    parked.nack(requeue=True)
    assert (info["function"], info["type"], info["kind"]) == (name, "loop.tick", "delivery_limit")
    assert f"delivered it {topology.DELIVERY_LIMIT + 1} times" in info["error"] and info["parked_at"]


def test_a_function_queue_declared_by_an_older_version_is_used_as_it_is_until_the_printed_policy_limits_it(
        brokers, vhost_url):
    import shlex
    from types import SimpleNamespace

    from bus import topology
    from bus.retry import RetryPolicy
    # Given the queues an older Doppel declared: a function queue without a delivery limit, classic delay queues
    broker = brokers()
    name = f"old{uuid.uuid4().hex[:6]}"
    function = SimpleNamespace(NAME=name, CONSUMES="old.tick")
    broker.declare([QueueSpec(topology.function_queue(name), "quorum", ("old.tick",)),
                    QueueSpec(f"doppel.fn.{name}.retry.1", "classic", message_ttl_ms=1000,
                              dead_letter_to=topology.function_queue(name))])

    # When this version declares its topology, and RabbitMQ drops the connection (everything is declared again)
    specs = topology.queues_for([function], RetryPolicy(attempts=2))
    broker.declare(specs)
    rabbitmqctl("close_all_connections", "-p", vhost_of(vhost_url), "test: connection dropped")
    wait_for(lambda: broker.reconnects >= 1, 10, "the reconnect")

    # Then the old queue is used as it is, and said to be, and serves
    assert list(broker.queues_as_found) == [topology.function_queue(name)]
    assert "inequivalent arg" in broker.queues_as_found[topology.function_queue(name)]
    served = Recorder(ack=False)

    def put_back(delivery):
        served(delivery)
        delivery.nack(requeue=True)
    broker.consume(topology.function_queue(name), put_back, prefetch=1)

    # ... and once the policy `doppel topology` prints is applied, a message that keeps coming back is parked
    (spec,) = [s for s in specs if s.name == topology.function_queue(name)]
    subprocess.run(shlex.split(topology.policy_command(spec, vhost_of(vhost_url))), check=True, capture_output=True)
    broker.publish([event("old.tick", 1)])
    wait_for(lambda: broker.depth(topology.dead_queue(name)) == 1, 20, "the message to be parked by the policy")
    assert served.count() == topology.DELIVERY_LIMIT + 1


def test_queues_made_before_the_cluster_urls_were_listed_are_kept_with_their_replicas_and_serve(brokers):
    """Growing one node into a cluster: the queues exist, made without a replica count; given three URLs, Doppel
    asks for 3 replicas, which RabbitMQ refuses for an existing queue. They are kept, and the other arguments are
    still checked (the function queue of an older version is still reported as such)."""
    from types import SimpleNamespace

    from bus import topology
    from bus.retry import RetryPolicy
    name = f"grown{uuid.uuid4().hex[:6]}"
    function = SimpleNamespace(NAME=name, CONSUMES="grown.tick")
    specs = topology.queues_for([function], RetryPolicy(attempts=2))
    brokers().declare(specs)

    broker = brokers(quorum_group_size=3)
    broker.declare(specs)
    assert broker.queues_as_found == {}
    broker.publish([event("grown.tick", 1)])
    wait_for(lambda: broker.depth(topology.function_queue(name)) == 1, 10, "the message in the function's queue")


def test_after_a_refused_publish_the_next_goes_out_on_a_new_channel(brokers, vhost_url):
    """RabbitMQ 3.10 can go on refusing every publish of one channel after a cluster node stopped, while a new
    channel is accepted (bench/RESULTS.md, issue 15): a nack costs the channel."""
    import pika
    queue = f"full{uuid.uuid4().hex[:6]}"
    connection = pika.BlockingConnection(pika.URLParameters(vhost_url))
    connection.channel().queue_declare(queue, durable=True, arguments={"x-max-length": 1,
                                                                       "x-overflow": "reject-publish"})
    connection.close()
    broker = brokers()
    broker.publish([Message(queue, b"1", message_id="one", exchange=DEFAULT_EXCHANGE)])
    opened = broker.publisher_state()["channels_opened"]

    with pytest.raises(PublishError, match="nack"):
        broker.publish([Message(queue, b"2", message_id="two", exchange=DEFAULT_EXCHANGE)])

    assert broker.purge(queue) == 1
    broker.publish([Message(queue, b"3", message_id="three", exchange=DEFAULT_EXCHANGE)])
    state = broker.publisher_state()
    assert state["channels_replaced"] == 1 and state["channels_opened"] == opened + 1 and state["ok"]
