"""POST /events: CloudEvents built by the CloudEvents SDK, in binary and structured mode, on the real server."""
import json
import uuid

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from gateway.http import Refused
from schemas.envelope import Event
from tests.support.gateway import Front


def sdk_event(event_type="env.requested", data=None, **attributes) -> CloudEvent:
    attributes = {"type": event_type, "source": "https://ci.example/pipeline/42", "specversion": "1.0",
                  "id": str(uuid.uuid4()), **attributes}
    return CloudEvent(attributes,
                      data if data is not None else {"env": "perf-test", "production": "shop", "ttl_seconds": 3600})


def to_binary(event):
    """The SDK's binary-mode HTTP message, as (headers, body)."""
    message = to_binary_event(event)
    return dict(message.headers), message.body


def to_structured(event):
    message = to_structured_event(event)
    return dict(message.headers), message.body


def test_binary_mode_event_is_published_and_reaches_the_audit_trail(front: Front):
    headers, body = to_binary(sdk_event())
    assert "ce-specversion" in headers  # the SDK really built binary mode

    answer = front.call("POST", "/events", body, {**headers, **front.bearer()})

    assert answer.status == 202, answer.body
    record = front.audited(answer.json["id"])
    assert record.type == "env.requested" and record.source == "https://ci.example/pipeline/42"
    assert record.data == {"env": "perf-test", "production": "shop", "ttl_seconds": 3600}


def test_structured_mode_event_keeps_its_id_and_correlation(front: Front):
    event = sdk_event("backup.due", {"env": "perf-test", "reason": "manual"}, id="ci-run-42-backup",
                      correlationid="chain-of-ci-run-42")
    headers, body = to_structured(event)
    assert headers["content-type"] == "application/cloudevents+json"

    answer = front.call("POST", "/events", body, {**headers, **front.bearer()})

    assert answer.status == 202 and answer.json["id"] == "ci-run-42-backup"
    record = front.audited("ci-run-42-backup")
    assert record.type == "backup.due" and record.correlation_id == "chain-of-ci-run-42"
    assert record.data["env"] == "perf-test"


def test_binary_header_values_are_percent_decoded(front: Front):
    headers, body = to_binary(sdk_event(source="urn:ci pipeline/one"))
    assert headers["ce-source"] == "urn:ci%20pipeline/one"  # the SDK encodes, as the binding says

    answer = front.call("POST", "/events", body, {**headers, **front.bearer()})

    assert answer.status == 202
    assert front.audited(answer.json["id"]).source == "urn:ci pipeline/one"


def test_the_same_event_sent_twice_is_accepted_twice_and_audited_once(front: Front):
    headers, body = to_structured(sdk_event(id="retried-by-the-sender"))

    first = front.call("POST", "/events", body, {**headers, **front.bearer()})
    second = front.call("POST", "/events", body, {**headers, **front.bearer()})

    assert first.status == second.status == 202
    front.quiesce()
    assert [r.id for r in front.app.audit.events()].count("retried-by-the-sender") == 1
    # counted where it happens (the audit trail de-duplicates on its own): the worker ran the audit function once
    # per record (the event, the env.failed it led to, quiesce's marker); the resent event was a duplicate, and so
    # was the env.failed its second snapshot run emitted again (a failed claim may run again; same derived id)
    counts = front.worker.stats.counts
    assert counts["handled:audit"] == len(front.app.audit.events()) == 3 and counts["duplicate:audit"] == 2


def test_a_wrong_or_missing_token_is_refused_and_nothing_is_published(front: Front):
    before = front.quiesce()
    headers, body = to_binary(sdk_event(id="must-not-arrive"))

    wrong = front.call("POST", "/events", body, {**headers, **front.bearer("events-token-7c1f9X")})
    missing = front.call("POST", "/events", body, headers)
    basic = front.call("POST", "/events", body, {**headers, "Authorization": "Basic ZXZlbnRzOnRva2Vu"})

    assert wrong.status == missing.status == basic.status == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert "events-token" not in wrong.body.decode()
    assert front.quiesce() == before
    assert not [r for r in front.app.audit.events() if r.id == "must-not-arrive"]


def test_data_that_fails_its_schema_is_refused_with_the_field_errors(front: Front):
    before = front.quiesce()
    headers, body = to_binary(sdk_event(data={"env": "Bad_Name", "ttl_seconds": 0}, id="invalid-one"))

    answer = front.call("POST", "/events", body, {**headers, **front.bearer()})

    assert answer.status == 400
    errors = answer.json["errors"]
    assert set(errors) == {"env", "production", "ttl_seconds"}
    assert "lower-case" in " ".join(errors["env"])
    assert front.quiesce() == before


def test_an_unknown_type_or_a_body_that_is_no_cloudevent_is_a_400(front: Front):
    headers, body = to_binary(sdk_event("env.teleported", {}))
    unknown = front.call("POST", "/events", body, {**headers, **front.bearer()})
    plain = front.post_json("/events", {"env": "perf-test"}, front.bearer())
    broken = front.call("POST", "/events", b"{not json", {"Content-Type": "application/cloudevents+json",
                                                           **front.bearer()})
    no_id = front.call("POST", "/events", json.dumps({"specversion": "1.0", "source": "x", "type": "poll.tick"})
                       .encode(), {"Content-Type": "application/cloudevents+json", **front.bearer()})

    assert unknown.status == 400 and "env.teleported" in unknown.json["error"]
    assert plain.status == 400 and "ce-specversion" in plain.json["fix"]
    assert broken.status == 400 and "not JSON" in broken.json["error"]
    assert no_id.status == 400 and "'id'" in no_id.json["error"]


def test_a_batch_is_refused_as_unsupported_media(front: Front):
    answer = front.call("POST", "/events", b"[]", {"Content-Type": "application/cloudevents-batch+json",
                                                   **front.bearer()})
    assert answer.status == 415


def test_an_id_or_correlationid_too_long_for_the_bus_is_a_400_that_names_it_and_publishes_nothing(front: Front):
    before = front.quiesce()
    long_id = to_structured(sdk_event("backup.due", {"env": "perf-test", "reason": "manual"}, id="i" * 300))
    long_chain = to_binary(sdk_event(correlationid="€" * 86))  # 86 characters, 258 bytes of UTF-8

    answers = [front.call("POST", "/events", body, {**headers, **front.bearer()})
               for headers, body in (long_id, long_chain)]

    assert [a.status for a in answers] == [400, 400]
    assert [(a.json["field"], a.json["bytes"], a.json["limit"]) for a in answers] == \
        [("id", 300, 255), ("correlationid", 258, 255)]
    assert "shorten id to at most 255 bytes" in answers[0].json["fix"]
    assert front.quiesce() == before
    assert front.gateway_metric("doppel_gateway_requests_rejected_total", "too_long") == 2
    health = front.call("GET", "/health")
    assert health.status == 200 and health.json["publisher"]["ok"] is True


def test_an_event_built_in_the_gateway_that_the_bus_cannot_carry_is_a_400_not_a_503(front: Front):
    # e.g. a chat command or an alarm whose correlation id came out too long: refused, never half-sent
    event = Event(type="notify.sent", source="doppel/gateway/slack", data={"text": "x"}, correlationid="c" * 300)

    with pytest.raises(Refused) as refused:
        front.server.gateway.publish(event, "slack")

    assert refused.value.status == 400 and refused.value.reason == "unsendable"
    assert refused.value.details == {"field": "correlation_id", "bytes": 300, "limit": 255}
