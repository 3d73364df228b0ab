"""The shipped Prometheus rules and Grafana dashboard: valid, firing when they should, on series Doppel exposes."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import functions
from bus.memory import MemoryBroker
from doppel.app import App
from doppel.config import parse_config
from doppel.metrics import LeaseCollector, QueueCollector, StateCollector, Ticks
from scheduler.lease import Lease

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/doppel-alerts.yml"
RULE_TESTS = ROOT / "deploy/prometheus/doppel-alerts.test.yml"
DASHBOARD = ROOT / "deploy/grafana/doppel.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@pytest.fixture(scope="session")
def promtool():
    subprocess.run(["bash", str(ROOT / "tests/services/prometheus.sh")], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("promtool")


@pytest.mark.prometheus
def test_the_shipped_alert_rules_pass_promtool_check_rules(promtool):
    run = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 5 rules found" in run.stdout


@pytest.mark.prometheus
def test_each_alert_fires_on_the_series_that_should_raise_it_and_not_before(promtool):
    run = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], capture_output=True, text=True, timeout=60,
                         cwd=RULE_TESTS.parent)
    assert run.returncode == 0, run.stdout + run.stderr


def exposed_series(tmp_path) -> set[str]:
    """Every series name a Doppel process can expose, from its families (empty ones too)."""
    app = App(parse_config({"state_dir": str(tmp_path), "productions": {}}, None), role="test")
    broker = MemoryBroker()
    collectors = [app.metrics.registry, QueueCollector(broker, functions.FUNCTIONS),
                  LeaseCollector(app.engine, Lease(app.engine, "a")),
                  StateCollector(app.config, app.registry, app.dr_states, app.catalogue), Ticks()]
    from bus import topology
    broker.declare(topology.queues_for(functions.FUNCTIONS, app.retry))
    names = set()
    try:
        for collector in collectors:
            for family in collector.collect():
                names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    finally:
        app.close()
    return names


def test_every_series_the_rules_and_the_dashboard_read_is_one_doppel_exposes(tmp_path):
    exposed = exposed_series(tmp_path)
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    read = set(re.findall(r"\bdoppel_[a-z_]+", RULES.read_text() + "\n".join(expressions)))
    assert read and read <= exposed, sorted(read - exposed)
    assert len(dashboard["panels"]) == len({p["id"] for p in dashboard["panels"]})  # ids unique, as Grafana needs
