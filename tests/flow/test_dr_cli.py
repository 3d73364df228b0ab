"""`doppel dr ...` as a person runs it, on the embedded bus: a subprocess per command, one config file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clouds.local.sample import make_sample_production

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def doppel(tmp_path):
    production = tmp_path / "production" / "shop"
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"), "productions": {"shop": make_sample_production(production)},
        "dr": {"shop": {"target": {"env": "shop-dr"}, "alarms": ["shop-down"],
                        "dns": {"records": [{"name": "shop.example.com", "value": "127.0.0.20"}]}}}}))
    environ = {k: v for k, v in os.environ.items() if k != "DOPPEL_AMQP_URL"}

    def run(*args, stdin=subprocess.DEVNULL):
        return subprocess.run([sys.executable, "-m", "doppel", "--config", str(config), *args], cwd=ROOT,
                              env=environ, stdin=stdin, capture_output=True, text=True, timeout=300)
    return run


def test_failover_refuses_without_a_terminal_unless_yes_and_status_failback_drill_report_work(doppel):
    assert doppel("backup", "now", "shop").returncode == 0

    refused = doppel("dr", "failover", "shop")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    assert json.loads(doppel("dr", "status", "-o", "json").stdout)[0]["state"] == "normal"

    done = doppel("dr", "failover", "shop", "--yes")
    assert done.returncode == 0 and done.stdout.startswith("failover.done: "), done.stderr
    status = json.loads(doppel("dr", "status", "-o", "json").stdout)[0]
    assert status["state"] == "failed_over" and status["serving_backup"]

    assert doppel("dr", "failback", "shop").returncode == 2
    back = doppel("dr", "failback", "shop", "--yes")
    assert back.returncode == 0 and back.stdout.startswith("failback.done: "), back.stderr
    assert json.loads(doppel("dr", "status", "-o", "json").stdout)[0]["state"] == "normal"

    drill = doppel("dr", "drill", "shop")
    assert drill.returncode == 0 and drill.stdout.startswith("drill.done: ")
    report = doppel("dr", "report", "-o", "json")
    (row,) = json.loads(report.stdout)
    assert row["production"] == "shop" and row["verified"] is True and row["rto_seconds"] > 0
    assert "shop" in doppel("dr", "report").stdout


def test_an_unknown_production_is_refused_with_the_policies_known(doppel):
    answer = doppel("dr", "failover", "nosuch", "--yes")
    assert answer.returncode == 2 and "no DR policy (policies: shop)" in answer.stderr


def test_after_a_failover_reap_keeps_the_dr_copy_removes_a_real_orphan_and_asks_first(doppel, tmp_path):
    from clouds.local.driver import LocalDriver
    # Given production failed over to its DR copy, shop-dr, and a restore target nobody registered beside it
    assert doppel("backup", "now", "shop").returncode == 0
    assert doppel("dr", "failover", "shop", "--yes").returncode == 0
    productions = yaml.safe_load((tmp_path / "doppel.yaml").read_text())["productions"]
    cloud = LocalDriver(tmp_path / "state" / "local", productions)
    cloud.restore_target("ghost-copy", production="shop")
    dr_copy = Path(cloud.stack_status("shop-dr").outputs["root"])
    before = sorted(p.relative_to(dr_copy) for p in dr_copy.rglob("*"))

    # When reap runs dry, then without a terminal, then with --yes
    dry = doppel("reap", "--dry-run")
    refused = doppel("reap")
    remaining = cloud.stack_status("ghost-copy")
    done = doppel("reap", "--yes")

    # Then the DR copy is never listed nor touched, the orphan is listed, and removed only with --yes
    assert dry.returncode == 0 and "shop-dr" not in dry.stdout
    assert "would remove stack ghost-copy (env ghost-copy: unknown)" in dry.stdout
    assert "1 orphaned resource (dry run: nothing removed)" in dry.stdout
    assert refused.returncode == 2 and "shop-dr" not in refused.stdout
    assert "remove 1 orphaned resource: there is no terminal to confirm on; add --yes" in refused.stderr
    assert remaining is not None
    assert done.returncode == 0, done.stderr
    assert "removing stack ghost-copy" in done.stdout and "shop-dr" not in done.stdout
    assert cloud.stack_status("ghost-copy") is None
    assert cloud.stack_status("shop-dr") is not None
    assert sorted(p.relative_to(dr_copy) for p in dr_copy.rglob("*")) == before
    assert json.loads(doppel("dr", "status", "-o", "json").stdout)[0]["state"] == "failed_over"
