"""Point 2 of issue 7 on the real OpenStack test bed (tests/services/openstack.sh): measures pushed to Gnocchi
cross an Aodh threshold alarm whose action is the gateway's hook URL, and production fails over exactly once,
although Aodh keeps notifying (repeat_actions) while the alarm stays in `alarm`."""
from __future__ import annotations

import datetime
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from core.cloud import DnsRecord
from tests.flow.test_dr_gateway import NAME, DrFront
from tests.support.gateway import SECRETS, embedded_gateway_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.openstack

ROOT = Path(__file__).resolve().parents[2]
METRIC = {"service_type": "metric", "interface": "public"}
ALARMING = {"service_type": "alarming", "interface": "public"}


@pytest.fixture(scope="module")
def conn():
    subprocess.run(["bash", str(ROOT / "tests/services/openstack.sh")], check=True,
                   stdout=None if os.environ.get("CI") else subprocess.DEVNULL)
    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", os.environ.get("CLOUDS_YAML", "/etc/doppel-test/clouds.yaml"))
    import openstack
    connection = openstack.connect(cloud="doppel-test")
    yield connection
    connection.close()


@pytest.fixture
def front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    alarm_name = f"doppel-dr-{uuid.uuid4().hex[:8]}"
    front = DrFront(tmp_path, tmp_path / "production" / "shop", alarms=(alarm_name,))
    front.alarm_name = alarm_name
    yield front
    front.close()


def push_high(session, metric_id: str) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    session.post(f"/v1/metric/{metric_id}/measures", endpoint_filter=METRIC,
                 json=[{"timestamp": (now - datetime.timedelta(seconds=k)).isoformat(), "value": 97.0}
                       for k in range(0, 15, 3)])


def test_a_gnocchi_threshold_alarm_fails_production_over_exactly_once(conn, front):
    session = conn.session
    front.app.cloud.switch_dns(DnsRecord(NAME, "A", "127.0.0.10", 300))
    front.app.backups.back_up("shop", front.app.cloud.backup_source("shop"), reason="manual")
    if session.get("/v1/archive_policy/doppel-dr-5s", raise_exc=False, endpoint_filter=METRIC).status_code == 404:
        session.post("/v1/archive_policy", endpoint_filter=METRIC, json={
            "name": "doppel-dr-5s", "aggregation_methods": ["mean"],
            "definition": [{"granularity": "5s", "points": 720}]})
    metric = session.post("/v1/metric", endpoint_filter=METRIC,
                          json={"archive_policy_name": "doppel-dr-5s", "name": front.alarm_name}).json()
    hook = f"{front.url}/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}"
    alarm = session.post("/v2/alarms", endpoint_filter=ALARMING, json={
        "name": front.alarm_name, "type": "gnocchi_aggregation_by_metrics_threshold", "severity": "critical",
        "gnocchi_aggregation_by_metrics_threshold_rule": {
            "metrics": [metric["id"]], "threshold": 50.0, "comparison_operator": "gt",
            "aggregation_method": "mean", "granularity": 5, "evaluation_periods": 1},
        "alarm_actions": [hook], "repeat_actions": True}).json()
    try:
        # When measures above the threshold arrive, until Aodh has notified at least twice (one repeat)
        def notified_twice():
            if len(front.app.audit.events(event_type="monitor.alert")) >= 2:
                return True
            push_high(session, metric["id"])  # a measure for each look, until Aodh has evaluated and notified
            return False
        wait_for(notified_twice, 240, "Aodh to notify the gateway twice", interval=3)
        front.quiesce()

        # Then exactly one failover, from Aodh's own notification
        alerts = front.app.audit.events(event_type="monitor.alert")
        assert alerts[0].data["alarm_id"] == alarm["alarm_id"] and alerts[0].data["current"] == "alarm"
        assert alerts[0].source == "doppel/gateway/aodh"
        assert any(a.data.get("previous") == "alarm" for a in alerts[1:])  # the repeats
        (done,) = front.app.audit.events(event_type="failover.done")
        assert done.correlation_id == alerts[0].id
        assert front.app.cloud.get_dns(NAME).value == "127.0.0.20"
    finally:
        session.delete(f"/v2/alarms/{alarm['alarm_id']}", endpoint_filter=ALARMING, raise_exc=False)
        session.delete(f"/v1/metric/{metric['id']}", endpoint_filter=METRIC, raise_exc=False)
