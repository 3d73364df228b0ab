"""An Aodh notification through the real gateway route, POST /hooks/aodh/<secret>, fails production over once.

The body and headers are those of Aodh's REST notifier (aodh/notifier/rest.py): a JSON
object of alarm_name, alarm_id, severity, previous, current, reason, reason_data, with
`X-Openstack-Request-Id: req-<uuid>` fixed per notification and kept across its retries.
"""
import json
import uuid

import pytest

from clouds.local.sample import make_sample_production
from core.cloud import DnsRecord
from tests.support.gateway import SECRETS, Front, embedded_gateway_env

NAME = "shop.example.com"


class DrFront(Front):
    """Front with a DR policy for the sample production."""

    def __init__(self, tmp_path, production, alarms=("shop-http-down",)):
        super().__init__(tmp_path, productions={"shop": make_sample_production(production)},
                         dr={"shop": {"target": {"env": "shop-dr"}, "alarms": list(alarms),
                                      "dns": {"records": [{"name": NAME, "value": "127.0.0.20"}]}}})


@pytest.fixture
def front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    front = DrFront(tmp_path, tmp_path / "production" / "shop")
    yield front
    front.close()


def aodh_notification(front, previous, current, request_id):
    """POST exactly as Aodh's REST notifier does for a gnocchi threshold alarm."""
    body = {"alarm_name": "shop-http-down", "alarm_id": "5b1f1a2e-8d3c-4a7e-9a51-0c6d2b7f3e11",
            "severity": "critical", "previous": previous, "current": current,
            "reason": "Transition to alarm due to 3 samples outside threshold, most recent: 97.0",
            "reason_data": {"type": "threshold", "disposition": "outside", "count": 3, "most_recent": 97.0}}
    return front.call("POST", f"/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}", json.dumps(body).encode(),
                      {"Content-Type": "application/json", "X-Openstack-Request-Id": request_id})


def test_an_aodh_alarm_through_the_gateway_fails_over_once(front):
    front.app.cloud.switch_dns(DnsRecord(NAME, "A", "127.0.0.10", 300))
    front.app.backups.back_up("shop", front.app.cloud.backup_source("shop"), reason="manual")

    first = f"req-{uuid.uuid4()}"
    answers = [aodh_notification(front, "ok", "alarm", first),
               aodh_notification(front, "ok", "alarm", first),            # Aodh's HTTP retry of the same one
               aodh_notification(front, "alarm", "alarm", f"req-{uuid.uuid4()}")]  # repeat_actions
    front.quiesce()

    assert [a.status for a in answers] == [202, 202, 202]
    assert len(front.app.audit.events(event_type="monitor.alert")) == 2  # the resent one was the same event
    (done,) = front.app.audit.events(event_type="failover.done")
    assert front.app.cloud.get_dns(NAME).value == "127.0.0.20"
    assert front.app.dr_states.get("shop").state == "failed_over" and done.data["production"] == "shop"


def test_a_forged_hook_call_fails_nothing_over(front):
    front.app.backups.back_up("shop", front.app.cloud.backup_source("shop"), reason="manual")
    forged = front.call("POST", "/hooks/aodh/not-the-secret",
                        json.dumps({"alarm_id": "x", "alarm_name": "shop-http-down", "current": "alarm",
                                    "previous": "ok"}).encode(), {"Content-Type": "application/json"})
    front.quiesce()
    assert forged.status == 401
    assert front.app.audit.events(event_type="monitor.alert") == []
    assert front.app.dr_states.get("shop").state == "normal"
