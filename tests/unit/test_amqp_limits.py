"""What AMQP can carry: `check_sendable` refuses what pika could not write, before anything is sent, on both brokers.

The in-memory broker refuses exactly what RabbitBroker refuses, so the embedded
default and RabbitMQ behave alike; and the check agrees with pika itself, which
is what would otherwise fail half-way through a publish.
"""
from datetime import datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from pika import frame, spec

from bus.memory import MemoryBroker
from bus.rabbitmq.amqp import amqp_properties, delivered_message
from core.broker import DEFAULT_EXCHANGE, Message, QueueSpec, Unsendable, check_sendable


def message(n: int = 0, **fields) -> Message:
    return Message(**{"exchange": DEFAULT_EXCHANGE, "routing_key": "q", "body": b"{}", "message_id": f"m-{n}",
                      **fields})


SENDABLE = [
    {"message_id": "m" * 255},
    {"correlation_id": "é" * 127},  # 254 bytes
    {"headers": {"k" * 255: "v" * 100_000}},  # a long string is fine as a value
    {"headers": {"int": 2 ** 63 - 1, "neg": -2 ** 63, "bool": True, "none": None, "bytes": b"\x00\xff",
                 "decimal": Decimal("1.25"), "when": datetime(2026, 1, 1, tzinfo=timezone.utc),
                 "table": {"list": [1, "two", {"three": [None]}]}}},
    {"timestamp": 0},
]
UNSENDABLE = [  # (fields, the field the error names)
    ({"message_id": "m" * 256}, "message_id"),
    ({"correlation_id": "é" * 128}, "correlation_id"),
    ({"routing_key": "r" * 256}, "routing_key"),
    ({"exchange": "e" * 256}, "exchange"),
    ({"content_type": "c" * 256}, "content_type"),
    ({"message_id": "\ud800"}, "message_id"),
    ({"headers": {"k" * 256: 1}}, "the name of headers["),
    ({"headers": {"ratio": 0.5}}, "headers['ratio']"),
    ({"headers": {"big": 2 ** 63}}, "headers['big']"),
    ({"headers": {"pair": (1, 2)}}, "headers['pair']"),
    ({"headers": {"tiny": Decimal("1e-300")}}, "headers['tiny']"),
    ({"headers": {"deep": {"list": [{"k" * 300: 1}]}}}, "the name of headers['deep']['list'][0]["),
    ({"timestamp": -1}, "timestamp"),
]


def pika_writes(message: Message) -> bool:
    """Whether pika can marshal this message's frames (it would raise inside basic_publish otherwise)."""
    try:
        frame.Method(1, spec.Basic.Publish(exchange=message.exchange, routing_key=message.routing_key)).marshal()
        frame.Header(1, len(message.body), amqp_properties(message)).marshal()
        return True
    except Exception:  # noqa: BLE001 - any failure means "cannot be written"
        return False


@pytest.mark.parametrize("fields", SENDABLE)
def test_what_the_check_accepts_pika_writes(fields):
    check_sendable(message(**fields))
    assert pika_writes(message(**fields))


@pytest.mark.parametrize("fields, field", UNSENDABLE)
def test_what_the_check_refuses_pika_could_not_write_and_the_error_names_the_field(fields, field):
    with pytest.raises(Unsendable) as refused:
        check_sendable(message(**fields))
    assert refused.value.field.startswith(field)
    assert not pika_writes(message(**fields))


def test_over_long_short_strings_say_their_length_and_the_limit():
    with pytest.raises(Unsendable) as refused:
        check_sendable(message(correlation_id="€" * 86))
    assert (refused.value.field, refused.value.length, refused.value.limit) == ("correlation_id", 258, 255)
    assert "correlation_id is 258 bytes; AMQP short strings hold at most 255" in str(refused.value)


def test_headers_larger_than_one_frame_are_refused_though_pika_would_write_them():
    # RabbitMQ would close the whole connection on a header frame over frame_max, not just refuse the message
    too_big = message(headers={"note": "n" * 131_072})
    assert pika_writes(too_big)
    with pytest.raises(Unsendable, match="one frame of at most 131072") as refused:
        check_sendable(too_big)
    assert refused.value.field == "headers" and refused.value.limit == 131_072


def test_the_memory_broker_refuses_an_unsendable_message_and_sends_nothing_of_its_batch():
    # Given a queue on the embedded bus
    broker = MemoryBroker()
    broker.declare([QueueSpec("q", "classic")])

    # When a valid message, a batch holding an over-long id, and another valid message are published
    broker.publish([message(1)])
    with pytest.raises(Unsendable, match="message_id is 300 bytes"):
        broker.publish([message(2), message(3, message_id="x" * 300)])
    broker.publish([message(4)])

    # Then only the two valid ones are queued: nothing of the refused batch
    taken = []
    while (delivery := broker.get("q")) is not None:
        taken.append(delivery.message.message_id)
        delivery.ack()
    assert taken == ["m-1", "m-4"]


def test_a_message_without_headers_goes_without_a_headers_table_and_reads_back_as_empty_headers():
    # An empty table is still encoded and stored with every message; none at all reads back the same
    bare, headed = message(), message(headers={"x-attempt": 2})
    properties = amqp_properties(bare)
    assert properties.headers is None
    with_empty_table = spec.BasicProperties(**{**properties.__dict__, "headers": {}})
    assert len(frame.Header(1, len(bare.body), properties).marshal()) < len(
        frame.Header(1, len(bare.body), with_empty_table).marshal())
    assert amqp_properties(headed).headers == {"x-attempt": 2}
    assert amqp_properties(headed).headers is not headed.headers  # a copy: pika may not change the message's
    method = SimpleNamespace(routing_key="r", exchange="e")
    assert delivered_message(method, properties, b"{}").headers == {}
