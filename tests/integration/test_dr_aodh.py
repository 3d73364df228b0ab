"""Point 2 of issue 7 on the real OpenStack test bed (tests/services/openstack.sh): measures pushed to Gnocchi
cross an Aodh threshold alarm whose action is the gateway's hook URL, and production fails over exactly once,
although Aodh keeps notifying (repeat_actions) while the alarm stays in `alarm`."""
from __future__ import annotations

import uuid

import pytest

from core.cloud import DnsRecord
from tests.flow.test_dr_gateway import NAME, DrFront
from tests.support.aodh import aodh_alarm
from tests.support.gateway import embedded_gateway_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.openstack



@pytest.fixture
def conn(openstack_cloud):
    """The session's connection to the OpenStack test bed (tests/integration/conftest.py)."""
    return openstack_cloud


@pytest.fixture
def front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    alarm_name = f"doppel-dr-{uuid.uuid4().hex[:8]}"
    front = DrFront(tmp_path, tmp_path / "production" / "shop", alarms=(alarm_name,))
    front.alarm_name = alarm_name
    yield front
    front.close()


def test_a_gnocchi_threshold_alarm_fails_production_over_exactly_once(conn, front):
    front.app.cloud.switch_dns(DnsRecord(NAME, "A", "127.0.0.10", 300))
    front.app.backups.back_up("shop", front.app.cloud.backup_source("shop"), reason="manual")
    with aodh_alarm(conn, front.alarm_name, front.url) as alarm:
        # When measures above the threshold arrive, until Aodh has notified at least twice (one repeat)
        def notified_twice():
            if len(front.app.audit.events(event_type="monitor.alert")) >= 2:
                return True
            alarm.push_high()  # a measure for each look, until Aodh has evaluated and notified
            return False
        wait_for(notified_twice, 240, "Aodh to notify the gateway twice", interval=3)
        front.quiesce()

        # Then exactly one failover, from Aodh's own notification
        alerts = front.app.audit.events(event_type="monitor.alert")
        assert alerts[0].data["alarm_id"] == alarm.alarm_id and alerts[0].data["current"] == "alarm"
        assert alerts[0].source == "doppel/gateway/aodh"
        assert any(a.data.get("previous") == "alarm" for a in alerts[1:])  # the repeats
        (done,) = front.app.audit.events(event_type="failover.done")
        assert done.correlation_id == alerts[0].id
        assert front.app.cloud.get_dns(NAME).value == "127.0.0.20"
