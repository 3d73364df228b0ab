"""The envelope against the CloudEvents SDK, a client written elsewhere."""
from datetime import datetime, timezone

import pytest
from cloudevents.core.bindings import rabbitmq as sdk_rabbitmq
from cloudevents.core.v1.event import CloudEvent

from schemas.envelope import EnvelopeError, Event, from_amqp


def sdk_event(**extra):
    attributes = {"type": "env.requested", "source": "https://ci.example/jobs/7", "id": "evt-1",
                  "specversion": "1.0", "time": datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc),
                  "correlationid": "chain-9", **extra}
    return CloudEvent(attributes, {"env": "perf-test", "production": "shop"})


def test_an_sdk_structured_message_is_read_with_its_extension():
    message = sdk_rabbitmq.to_structured_event(sdk_event())
    event = from_amqp(message.body, message.headers, message.content_type)
    assert (event.type, event.source, event.id, event.correlationid) == \
        ("env.requested", "https://ci.example/jobs/7", "evt-1", "chain-9")
    assert event.data == {"env": "perf-test", "production": "shop"}
    assert event.time == datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)


def test_an_sdk_binary_message_is_read_too():
    message = sdk_rabbitmq.to_binary_event(sdk_event())
    event = from_amqp(message.body, message.headers, message.content_type)
    assert event.id == "evt-1" and event.correlationid == "chain-9" and event.data["env"] == "perf-test"


def test_what_doppel_writes_the_sdk_reads_with_utc_time():
    ours = Event(type="env.ready", source="doppel/configure", data={"env": "x", "endpoints": {}},
                 correlationid="chain-9")
    message = sdk_rabbitmq.RabbitMQMessage(headers={}, content_type="application/cloudevents+json",
                                           body=ours.to_json())
    theirs = sdk_rabbitmq.from_structured_event(message)
    assert theirs.get_id() == ours.id and theirs.get_type() == "env.ready"
    assert theirs.get_extension("correlationid") == "chain-9"
    assert theirs.get_time().utcoffset().total_seconds() == 0
    assert theirs.get_data() == {"env": "x", "endpoints": {}}


def test_first_event_of_a_chain_starts_it_with_its_own_id():
    event = Event(type="env.requested", source="cli", data={})
    assert event.correlationid == event.id


@pytest.mark.parametrize("body, fragment", [
    (b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}', "specversion"),
    (b'{"specversion": "1.0", "source": "s", "type": "t"}', "'id'"),
    (b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "Bad-Name": 1}', "extension name"),
    (b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": "yesterday"}', "RFC 3339"),
    (b'[1, 2]', "JSON object"),
    (b'\xff\xfe', "not JSON"),
])
def test_unreadable_envelopes_say_why(body, fragment):
    with pytest.raises(EnvelopeError, match=fragment):
        Event.from_json(body)
