"""POST /hooks/aodh/<secret>: requests shaped exactly as Aodh's REST notifier sends them (aodh/notifier/rest.py)."""
import json
import logging
import uuid

import requests

from gateway.aodh import alert_id
from tests.support.gateway import SECRETS, Front

SECRET = SECRETS["DOPPEL_TEST_AODH_SECRET"]


def notify_like_aodh(url: str, *, current="alarm", previous="ok", request_id=None, reason_data=None,
                     alarm_id="0f6c3a7e-3d55-4a55-9d7b-2b1f8f1c9a10"):
    """What RestAlarmNotifier.notify does: a JSON body of seven keys, its own request id header, requests.post."""
    body = {"alarm_name": "shop-http-5xx", "alarm_id": alarm_id, "severity": "critical",
            "previous": previous, "current": current,
            "reason": "Transition to alarm due to 3 samples outside threshold, most recent: 91.5",
            "reason_data": reason_data if reason_data is not None else
            {"type": "threshold", "disposition": "outside", "count": 3, "most_recent": 91.5}}
    headers = {"x-openstack-request-id": (request_id or f"req-{uuid.uuid4()}").encode(),
               "content-type": "application/json"}
    return requests.Session().post(url, data=json.dumps(body), headers=headers, timeout=30)


def test_an_alarm_notification_becomes_a_monitor_alert(front: Front):
    answer = notify_like_aodh(f"{front.url}/hooks/aodh/{SECRET}")

    assert answer.status_code == 202, answer.text
    record = front.audited(answer.json()["id"])
    assert record.type == "monitor.alert" and record.source == "doppel/gateway/aodh"
    assert record.data["alarm_id"] == "0f6c3a7e-3d55-4a55-9d7b-2b1f8f1c9a10"
    assert (record.data["previous"], record.data["current"], record.data["severity"]) == ("ok", "alarm", "critical")
    assert record.data["reason_data"]["most_recent"] == 91.5


def test_aodh_resending_one_notification_is_one_event(front: Front):
    first = notify_like_aodh(f"{front.url}/hooks/aodh/{SECRET}", request_id="req-resent-1")
    again = notify_like_aodh(f"{front.url}/hooks/aodh/{SECRET}", request_id="req-resent-1")

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    front.quiesce()
    assert len(front.app.audit.events(event_type="monitor.alert")) == 1


def test_alarm_ok_alarm_is_three_events_not_one(front: Front):
    url = f"{front.url}/hooks/aodh/{SECRET}"
    ids = [notify_like_aodh(url, previous=p, current=c).json()["id"]
           for p, c in (("ok", "alarm"), ("alarm", "ok"), ("ok", "alarm"))]

    assert len(set(ids)) == 3
    front.quiesce()
    # (handlers run on several threads, so the audit may record them in another order: the events' own time
    # is the order Aodh sent them in)
    alerts = sorted(front.app.audit.events(event_type="monitor.alert"), key=lambda r: r.time)
    assert [r.data["current"] for r in alerts] == ["alarm", "ok", "alarm"]


def test_the_id_follows_the_evaluation_moment_when_reason_data_has_one():
    event_alarm = {"alarm_id": "a1", "current": "alarm",
                   "reason_data": {"type": "event", "event": {"generated": "2026-11-22T03:00:00", "message_id": "m1"}}}
    later = {**event_alarm, "reason_data": {"type": "event", "event": {"generated": "2026-11-22T03:05:00"}}}

    assert alert_id(event_alarm, "req-1") == alert_id(event_alarm, "req-2")  # the moment wins over the request
    assert alert_id(later) != alert_id(event_alarm)
    assert alert_id({**event_alarm, "current": "ok"}) != alert_id(event_alarm)
    assert alert_id({"alarm_id": "a1", "current": "alarm"}) != alert_id({"alarm_id": "a1", "current": "alarm"})


def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_published(front: Front, caplog):
    before = front.quiesce()
    caplog.set_level(logging.INFO, logger="doppel.gateway")

    wrong = notify_like_aodh(f"{front.url}/hooks/aodh/{SECRET[:-1]}X")
    missing = notify_like_aodh(f"{front.url}/hooks/aodh")
    with_token_but_no_keystone = requests.post(f"{front.url}/hooks/aodh", json={"alarm_id": "a", "current": "alarm"},
                                               headers={"X-Auth-Token": "gAAAAAB-some-token"}, timeout=30)
    right = notify_like_aodh(f"{front.url}/hooks/aodh/{SECRET}")

    assert wrong.status_code == missing.status_code == with_token_but_no_keystone.status_code == 401
    assert right.status_code == 202
    assert front.quiesce() == before + 1
    logged = caplog.text
    assert "/hooks/aodh/[redacted]" in logged and SECRET[:-1] not in logged


def test_a_payload_that_is_not_an_alarm_notification_is_a_400_with_field_errors(front: Front):
    before = front.quiesce()

    bad_state = notify_like_aodh(f"{front.url}/hooks/aodh/{SECRET}", current="on fire")
    no_id = front.post_json(f"/hooks/aodh/{SECRET}", {"current": "alarm"})
    not_json = front.call("POST", f"/hooks/aodh/{SECRET}", b"alarm!", {"Content-Type": "application/json"})

    assert bad_state.status_code == 400 and "current" in bad_state.json()["errors"]
    assert no_id.status == 400 and "alarm_id" in no_id.json["errors"]
    assert not_json.status == 400
    assert front.quiesce() == before
