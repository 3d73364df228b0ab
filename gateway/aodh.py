"""Aodh's REST notifier payload -> a `monitor.alert` event whose id repeats when the notification does.

What is the same notification? Aodh posts once per evaluation that fires an action:
on a transition, and again on every evaluation while `repeat_actions` is set; its
HTTP client may also resend the very same request. The id is derived from
alarm_id + current state + the moment the evaluation describes, so a resent or
duplicated notification gets the same id (and downstream de-duplicates it), while
a later transition into the same state (alarm -> ok -> alarm) gets a new one.
The moment comes from `reason_data` (`timestamp`, or an event alarm's event
`generated` time); threshold alarms carry none, so then Aodh's per-notification
`X-Openstack-Request-Id` stands in (stable across its own retries); with neither,
the id is new and every POST is its own event.
"""
from __future__ import annotations

from gateway.http import Refused
from schemas.envelope import Event, derived_id, new_event_id
from schemas.events import validate_in

SOURCE = "doppel/gateway/aodh"
PAYLOAD = ("alarm_id", "alarm_name", "severity", "previous", "current", "reason", "reason_data")


def evaluation_moment(reason_data) -> str | None:
    """The time the notification's evaluation is about, when Aodh's reason_data carries one."""
    if not isinstance(reason_data, dict):
        return None
    for key in ("timestamp", "generated"):
        if reason_data.get(key):
            return str(reason_data[key])
    event = reason_data.get("event")
    if isinstance(event, dict) and event.get("generated"):
        return str(event["generated"])
    return None


def alert_id(data: dict, request_id: str = "") -> str:
    """The event id: deterministic for the same evaluation of the same alarm, new otherwise."""
    moment = evaluation_moment(data.get("reason_data"))
    if moment:
        return derived_id("aodh", data["alarm_id"], data["current"], "at", moment)
    if request_id:
        return derived_id("aodh", data["alarm_id"], data["current"], "request", request_id)
    return new_event_id()


def alert_event(payload, request_id: str = "") -> Event:
    """The `monitor.alert` for an Aodh notification; Refused(400) with the field errors when it is not one."""
    if not isinstance(payload, dict):
        raise Refused(400, "malformed", "Aodh's notification is a JSON object",
                      "post the REST notifier's body: alarm_id, current, previous, reason, reason_data, ...")
    # Aodh sends null for what it does not know (e.g. previous on a new alarm): absent, not invalid.
    data = {key: payload[key] for key in PAYLOAD if payload.get(key) is not None}
    errors = validate_in("monitor.alert", data)
    if errors:
        raise Refused(400, "invalid", "the notification does not fit monitor.alert",
                      "send Aodh's REST notifier payload", details={"errors": errors})
    return Event(type="monitor.alert", source=SOURCE, data=data, id=alert_id(data, request_id),
                 subject=data["alarm_id"])
