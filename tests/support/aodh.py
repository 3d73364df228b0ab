"""A Gnocchi threshold alarm in the test bed's Aodh whose action is a gateway's hook: what a monitoring set-up
that watches production does, for the DR tests on both kinds of target."""
from __future__ import annotations

import datetime
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from tests.support.gateway import SECRETS

METRIC = {"service_type": "metric", "interface": "public"}
ALARMING = {"service_type": "alarming", "interface": "public"}
POLICY = "doppel-dr-5s"


@dataclass(frozen=True)
class Alarm:
    alarm_id: str
    push_high: Callable[[], None]  # measures over the threshold, for Aodh's next evaluation


@contextmanager
def aodh_alarm(conn, name: str, gateway_url: str) -> Iterator[Alarm]:
    """An alarm `name` on a metric of its own (5 s granularity, over 50 means `alarm`), repeating its action
    while in alarm; the alarm and the metric are deleted on the way out."""
    session = conn.session
    if session.get(f"/v1/archive_policy/{POLICY}", raise_exc=False, endpoint_filter=METRIC).status_code == 404:
        session.post("/v1/archive_policy", endpoint_filter=METRIC, json={
            "name": POLICY, "aggregation_methods": ["mean"], "definition": [{"granularity": "5s", "points": 720}]})
    metric = session.post("/v1/metric", endpoint_filter=METRIC,
                          json={"archive_policy_name": POLICY, "name": name}).json()
    alarm = session.post("/v2/alarms", endpoint_filter=ALARMING, json={
        "name": name, "type": "gnocchi_aggregation_by_metrics_threshold", "severity": "critical",
        "gnocchi_aggregation_by_metrics_threshold_rule": {
            "metrics": [metric["id"]], "threshold": 50.0, "comparison_operator": "gt",
            "aggregation_method": "mean", "granularity": 5, "evaluation_periods": 1},
        "alarm_actions": [f"{gateway_url}/hooks/aodh/{SECRETS['DOPPEL_TEST_AODH_SECRET']}"],
        "repeat_actions": True}).json()

    def push_high() -> None:
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        session.post(f"/v1/metric/{metric['id']}/measures", endpoint_filter=METRIC,
                     json=[{"timestamp": (now - datetime.timedelta(seconds=k)).isoformat(), "value": 97.0}
                           for k in range(0, 15, 3)])
    try:
        yield Alarm(alarm["alarm_id"], push_high)
    finally:
        session.delete(f"/v2/alarms/{alarm['alarm_id']}", endpoint_filter=ALARMING, raise_exc=False)
        session.delete(f"/v1/metric/{metric['id']}", endpoint_filter=METRIC, raise_exc=False)
