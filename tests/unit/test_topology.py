"""The queues Doppel declares: nothing dropped between them, and no message delivered for ever."""
import json
import shlex
from types import SimpleNamespace

from bus import topology
from bus.memory import MemoryBroker
from bus.rabbitmq.amqp import queue_arguments
from bus.retry import RetryPolicy
from core.broker import DEFAULT_EXCHANGE, Message, QueueSpec

SNAPSHOT = SimpleNamespace(NAME="snapshot", CONSUMES="env.requested")


def specs_by_name(retry: RetryPolicy | None = None) -> dict[str, QueueSpec]:
    retry = retry or RetryPolicy(attempts=3, first_delay_ms=1000)
    return {spec.name: spec for spec in topology.queues_for([SNAPSHOT], retry)}


def test_a_functions_queue_delivers_a_message_a_bounded_number_of_times_then_parks_it():
    specs = specs_by_name()
    queue = specs["doppel.fn.snapshot"]
    assert queue.kind == "quorum" and queue.bindings == ("env.requested",)
    assert queue.delivery_limit == topology.DELIVERY_LIMIT and queue.dead_letter_to == "doppel.fn.snapshot.dead"
    assert queue_arguments(queue) == {
        "x-queue-type": "quorum", "x-delivery-limit": topology.DELIVERY_LIMIT,
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "doppel.fn.snapshot.dead",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    # a queue an older version declared without these is used as it is, not refused
    assert queue.accept_existing


def test_delay_queues_are_quorum_queues_that_move_a_message_on_only_once_its_function_queue_has_it():
    specs = specs_by_name()
    delays = [specs[f"doppel.fn.snapshot.delay.{step}"] for step in (1, 2)]
    assert [d.message_ttl_ms for d in delays] == [1000, 2000]
    for delay in delays:
        arguments = queue_arguments(delay)
        assert arguments["x-queue-type"] == "quorum" and arguments["x-dead-letter-routing-key"] == "doppel.fn.snapshot"
        assert arguments["x-dead-letter-strategy"] == "at-least-once" and arguments["x-overflow"] == "reject-publish"
        assert not delay.accept_existing  # a changed retry delay must not pass unnoticed
    assert specs["doppel.fn.snapshot.dead"].kind == "quorum"
    # the classic delay queues of earlier versions are not declared any more
    assert not [name for name in specs if ".retry." in name]


def test_classic_queues_dead_letter_as_before():
    classic = QueueSpec("side.wait", "classic", message_ttl_ms=5, dead_letter_to="side")
    assert "x-dead-letter-strategy" not in queue_arguments(classic)


def test_the_policy_for_a_queue_declared_without_the_limit_gives_it_what_a_new_one_is_declared_with():
    queue = specs_by_name()["doppel.fn.snapshot"]
    words = shlex.split(topology.policy_command(queue, "doppel/prod"))
    assert words[:4] == ["rabbitmqctl", "set_policy", "-p", "doppel/prod"]
    name, pattern, definition = words[-3], words[-2], json.loads(words[-1])
    assert name == "doppel.fn.snapshot" and pattern == r"^doppel\.fn\.snapshot$"
    declared = queue_arguments(queue)
    assert {f"x-{key}": value for key, value in definition.items()} == {
        key: value for key, value in declared.items() if key != "x-queue-type"}


def test_the_embedded_broker_parks_a_message_put_back_more_than_the_limit_with_rabbitmqs_headers():
    # Given a function queue with a delivery limit of 2, and a consumer that always puts its message back
    broker = MemoryBroker()
    broker.declare([QueueSpec("fn.dead"), QueueSpec("fn", delivery_limit=2, dead_letter_to="fn.dead")])
    counts = []

    def put_back(delivery):
        counts.append(delivery.message.headers.get("x-delivery-count", 0))
        delivery.nack(requeue=True)
    broker.consume("fn", put_back)

    # When a message arrives
    broker.publish([Message(exchange=DEFAULT_EXCHANGE, routing_key="fn", body=b"{}", message_id="m-1")])
    broker.run_until_idle(timeout=5)

    # Then it is delivered three times (the limit is on returns, as RabbitMQ counts), then parked with why
    assert counts == [0, 1, 2]
    parked = broker.get("fn.dead").message
    assert parked.message_id == "m-1" and "x-delivery-count" not in parked.headers
    (death,) = parked.headers["x-death"]
    assert death["reason"] == "delivery_limit" and death["queue"] == "fn"


def test_on_a_cluster_each_quorum_queue_gets_the_replicas_asked_for_and_a_classic_queue_none():
    specs = specs_by_name()
    assert queue_arguments(specs["doppel.fn.snapshot"], 3)["x-quorum-initial-group-size"] == 3
    assert queue_arguments(specs["doppel.fn.snapshot.delay.1"], 3)["x-quorum-initial-group-size"] == 3
    assert "x-quorum-initial-group-size" not in queue_arguments(specs["doppel.fn.snapshot"])
    assert "x-quorum-initial-group-size" not in queue_arguments(QueueSpec("q", "classic"), 3)


def test_a_clusters_urls_are_read_from_a_comma_separated_list_or_a_list():
    from bus.rabbitmq.amqp import split_urls
    assert split_urls("amqp://a:1@h1/v, amqp://a:1@h2/v,") == ["amqp://a:1@h1/v", "amqp://a:1@h2/v"]
    assert split_urls(["amqp://h1/v"]) == ["amqp://h1/v"]
    import pytest
    with pytest.raises(ValueError, match="comma-separated"):
        split_urls(" , ")
