"""Restore drills (functions/drill.py) on the embedded bus, the sample production and the local driver: what a
drill records and reports, each test named by what it catches when it breaks. A cloud target's drill is in
tests/unit/test_dr_cloud_target.py."""
import time

import pytest

from core.broker import event_message
from core.cloud import TAG_PRODUCTION
from doppel.cli.common import build_event
from functions import drill
from tests.flow.conftest import Shop
from tests.flow.test_dr import back_up, dr_policy


@pytest.fixture
def drill_shop(tmp_path, monkeypatch):
    """The sample production with the DR policy `dr_policy(**overrides)`, or with no `dr:` at all (None)."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    made = []

    def make(overrides: dict | None):
        made.append(Shop(tmp_path) if overrides is None else Shop(tmp_path, dr=dr_policy(**overrides)))
        return made[-1]
    yield make
    for shop in made:
        shop.app.close()


def test_a_verified_drill_records_the_verification_and_reports_the_rto_it_measured(drill_shop):
    # Breaks caught: the detail not the verification's summary; drill.done without the RTO (or another one
    # than recorded); the RTO not the restore's and probe's duration
    shop = drill_shop({})
    backup = back_up(shop)

    before = time.monotonic()
    shop.publish("drill.due", production="shop")
    elapsed = time.monotonic() - before

    (done,) = shop.events("drill.done")
    (drill,) = shop.app.dr_states.drills("shop")
    assert done.data["verified"] is True and drill.verified
    assert drill.detail == f"backup {backup} of shop: verified (1 database(s) intact)"
    assert done.data["rto_seconds"] == drill.rto_seconds and 0 < drill.rto_seconds <= elapsed


def test_a_drill_whose_restored_copy_fails_the_health_probe_is_not_verified_and_says_what_is_missing(drill_shop):
    # Breaks caught: the probe's problems dropped (or the production's health paths not used); verified when
    # either the backup or the copy is bad; the problems not listed one by one
    shop = drill_shop(dict(health={"paths": ["app", "data/shop.db", "app/maintenance.html", "app/robots.txt"]}))
    backup = back_up(shop)  # production has neither app/maintenance.html nor app/robots.txt

    shop.publish("drill.due", production="shop")

    (done,) = shop.events("drill.done")
    (drill,) = shop.app.dr_states.drills("shop")
    assert done.data["verified"] is False and not drill.verified
    assert drill.detail == "app/maintenance.html is missing; app/robots.txt is missing"
    assert shop.app.catalogue.get(backup).verify_ok is True  # the backup itself is sound: the copy is not


def test_a_production_without_a_dr_policy_is_drilled_on_its_own_newest_backup(drill_shop):
    # Breaks caught: a production with no `dr:` policy not drillable (its default probe lost); the newest
    # backup of any production drilled instead of this one's
    shop = drill_shop(None)
    own = back_up(shop)
    other = shop.app.backups.back_up("blog", shop.app.cloud.backup_source("shop"), reason="manual").backup_id

    shop.publish("drill.due", production="shop")

    (done,) = shop.events("drill.done")
    assert done.data["backup_id"] == own != other and done.data["verified"] is True
    assert [d.backup_id for d in shop.app.dr_states.drills("shop")] == [own]



def test_a_drill_whose_scratch_environment_cannot_be_made_fails_naming_the_cause(drill_shop):
    # Break caught: the final clean-up insisting on a scratch environment that was never made, so drill.failed
    # says "there is no environment ... to delete" instead of why it could not be made
    shop = drill_shop({})
    back_up(shop)
    due = build_event("drill.due", {"production": "shop"}, source="test")
    where = shop.app.config.state_dir / "local" / "envs" / drill.scratch_env("shop", due)
    where.symlink_to(where.parent / "nowhere")  # a dangling link where the local driver makes the environment

    shop.app.broker.publish([event_message(due)])
    shop.app.broker.run_until_idle(timeout=60)

    (failed,) = shop.events("drill.failed")
    assert failed.data["cause_id"] == due.id and failed.data["reason"].startswith("FileExistsError: ")
    assert shop.app.dr_states.drills() == []


def test_a_drills_scratch_environment_is_made_as_its_productions_and_gone_after(drill_shop):
    # Break caught: the scratch environment made without its production, so the driver neither places it with
    # the production's own driver (a mixed estate) nor knows, at its teardown, the production's server
    # databases restored for it, which stay on their server with production's data
    shop = drill_shop({})
    back_up(shop)
    seen = []

    class Probe:
        def __init__(self, real):
            self._real = real

        def files(self, spec, root, policy):
            seen.extend(shop.app.cloud.find_tagged({TAG_PRODUCTION: "shop"}))
            return self._real.files(spec, root, policy)

    shop.app.deps.probe = Probe(shop.app.deps.probe)
    due = build_event("drill.due", {"production": "shop"}, source="test")
    shop.app.broker.publish([event_message(due)])
    shop.app.broker.run_until_idle(timeout=60)

    assert [(r.kind, r.name) for r in seen] == [("stack", drill.scratch_env("shop", due))]
    assert shop.app.cloud.find_tagged({TAG_PRODUCTION: "shop"}) == []
    assert shop.events("drill.done")[0].data["verified"] is True
