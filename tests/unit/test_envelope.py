"""The envelope against the CloudEvents SDK, a client written elsewhere, and against bodies no client should send."""
import json
from datetime import datetime, timezone

import pytest
from cloudevents.core.bindings import rabbitmq as sdk_rabbitmq
from cloudevents.core.v1.event import CloudEvent

from schemas.envelope import AttributeTooLong, EnvelopeError, Event, from_amqp


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


def envelope(**attributes) -> dict:
    return {"specversion": "1.0", "id": "evt-1", "source": "test", "type": "env.requested", **attributes}


@pytest.mark.parametrize("body, fragment", [
    (json.dumps(envelope(time=5)).encode(), "time must be an RFC 3339 string, got int"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"a":' * 100_000, "nested too deeply"),
    (json.dumps(envelope()).encode()[:-1] + b', "data": {"n": ' + b"9" * 5000 + b"}}", "more than 4300 digits"),
    (json.dumps(envelope(id=5)).encode(), "'id' must be a string, got int"),
    (json.dumps(envelope(source=["s"])).encode(), "'source' must be a string, got list"),
    (json.dumps(envelope(correlationid=7)).encode(), "'correlationid' must be a string, got int"),
    (json.dumps(envelope(subject={"a": 1})).encode(), "'subject' must be a string, got dict"),
    (b'{"specversion": "1.0", "id": "caf\xe9", "source": "s", "type": "t"}', "not UTF-8"),
    (b'{"specversion": "1.0", "id": "\\ud800", "source": "s", "type": "t"}', "not valid Unicode"),
])
def test_poison_bodies_are_envelope_errors_not_crashes(body, fragment):
    with pytest.raises(EnvelopeError, match=fragment):
        Event.from_json(body)


@pytest.mark.parametrize("name, fits, too_long", [
    ("id", "i" * 255, "i" * 256),
    ("correlationid", "€" * 85, "€" * 86),  # 3 bytes each: 255 fits, 258 does not, though only 86 characters
    ("type", "t" * 255, "t" * 256),
    ("source", "s" * 255, "s" * 256),
    ("subject", "é" * 127, "é" * 128),
])
def test_attributes_that_travel_in_amqp_are_held_to_255_bytes_of_utf8(name, fits, too_long):
    assert getattr(Event.from_dict(envelope(**{name: fits})), name) == fits

    with pytest.raises(AttributeTooLong) as refused:
        Event.from_dict(envelope(**{name: too_long}))
    assert (refused.value.name, refused.value.length, refused.value.limit) == \
        (name, len(too_long.encode()), 255)
    assert f"'{name}' is {len(too_long.encode())} bytes" in str(refused.value)


def test_an_over_long_correlation_id_is_refused_in_binary_mode_too():
    headers = {"ce-specversion": "1.0", "ce-id": "evt-1", "ce-source": "test", "ce-type": "env.requested",
               "ce-correlationid": "c" * 300}
    with pytest.raises(AttributeTooLong, match="'correlationid' is 300 bytes"):
        from_amqp(b"{}", headers, "application/json")


def test_binary_mode_headers_and_data_that_cannot_be_read_are_envelope_errors():
    headers = {"ce-specversion": "1.0", "ce-id": b"\xff\xfe", "ce-source": "test", "ce-type": "env.requested"}
    with pytest.raises(EnvelopeError, match="not UTF-8"):
        from_amqp(b"{}", headers, "application/json")
    headers["ce-id"] = "evt-1"
    with pytest.raises(EnvelopeError, match="binary-mode data is nested too deeply"):
        from_amqp(b"[" * 100_000, headers, "application/json")


def test_a_time_past_year_9999_in_utc_is_an_envelope_error_not_an_overflow():
    body = {"specversion": "1.0", "id": "1", "source": "s", "type": "env.requested",
            "time": "9999-12-31T23:59:59-01:00", "data": {}}
    with pytest.raises(EnvelopeError, match="out of range"):
        Event.from_dict(body)
