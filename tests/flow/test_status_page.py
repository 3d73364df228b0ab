"""The status page, opened in headless Chromium (Debian's package, tests/services/chromium.sh) the way a person
opens it: a Basic challenge answered with the gateway's token. It shows a living environment, a chain under
way at its current step, and a production's DR state, newest backup and drills.

DOPPEL_STATUS_SCREENSHOT=docs/status-page.png refreshes the screenshot in the docs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clouds.local.sample import make_sample_production
from core.dr_state import FAILED_OVER, NORMAL, Drill
from core.registry import CLONING, READY, SNAPSHOTTING
from tests.support.gateway import SECRETS, Front, embedded_gateway_env

pytestmark = pytest.mark.chromium
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium():
    subprocess.run(["bash", str(ROOT / "tests/services/chromium.sh")], check=True,
                   stdout=None if os.environ.get("CI") else subprocess.DEVNULL)
    return shutil.which("chromium")


@pytest.fixture
def front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    shop = make_sample_production(tmp_path / "production" / "shop")
    running = Front(tmp_path, productions={"shop": shop})
    yield running
    running.close()


def publish(front: Front, event_type: str, data: dict) -> str:
    event_id = f"page-{event_type}-{time.monotonic_ns()}"
    answer = front.call("POST", "/events", json.dumps(data).encode(), {
        "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": event_id, "ce-source": "test/page",
        "ce-type": event_type, **front.bearer()})
    assert answer.status == 202, answer.body
    return event_id


def headless(chromium: str, tmp_path: Path, *args: str) -> str:
    run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--user-data-dir={tmp_path / 'chromium'}", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_the_page_shows_a_living_environment_a_running_chain_and_the_dr_state(chromium, front, tmp_path):
    # Given a clone that finished, one under way, a backup of shop, and shop failed over after a drill
    publish(front, "env.requested", {"env": "perf-test", "production": "shop", "owner": "alice",
                                     "ttl_seconds": 8 * 3600})
    publish(front, "backup.due", {"env": "shop", "reason": "manual"})
    half, _ = front.app.registry.request(name="half-made", request_id="test/half", production="shop", owner="bob")
    front.app.registry.move(front.app.registry.move(half, SNAPSHOTTING), CLONING)
    front.quiesce()
    [backup] = front.app.catalogue.list("shop")
    front.app.dr_states.record_drill(Drill("shop", backup.id, datetime.now(timezone.utc), True, 60.0, 30.0, "ok"))
    assert front.app.dr_states.move("shop", (NORMAL,), FAILED_OVER, backup_id=backup.id)
    assert front.app.registry.living("perf-test").state == READY
    token = SECRETS["DOPPEL_TEST_GATEWAY_TOKEN"]
    page = f"http://doppel:{token}@{front.url.removeprefix('http://')}/status"

    # When a person opens it in Chromium (which answers the gateway's Basic challenge with the token)
    dom = headless(chromium, tmp_path, "--dump-dom", page)
    shot = tmp_path / "status.png"
    headless(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1100,720", page)

    # Then it shows each, in its table
    environments = dom.split('id="environments"')[1].split("</table>")[0]
    chains = dom.split('id="chains"')[1].split("</table>")[0]
    productions = dom.split('id="productions"')[1].split("</table>")[0]
    assert "perf-test" in environments and ">ready<" in environments and "alice" in environments
    assert "8.0 h" in environments or "7.9 h" in environments  # time left of an 8 h TTL
    assert "half-made (from shop)" in chains and ">cloning<" in chains
    assert "shop" in chains and ">failed_over<" in chains  # the DR chain in flight
    assert ">failed_over<" in productions and backup.id in productions
    assert "verified" in productions and "never drilled" not in productions
    assert token not in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("DOPPEL_STATUS_SCREENSHOT"):
        shutil.copy(shot, ROOT / os.environ["DOPPEL_STATUS_SCREENSHOT"])


def test_the_page_challenges_a_browser_without_the_token(front):
    anonymous = front.call("GET", "/status")
    wrong = front.call("GET", "/status", headers={"Authorization": "Basic ZG9wcGVsOndyb25n"})  # doppel:wrong

    assert anonymous.status == wrong.status == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="doppel status"'
    assert "the gateway's token" in wrong.json["error"]
