"""What a failback leaves behind, on the embedded bus and the sample production: its backup told apart, a
`normal` row holding nothing of the failover it ended (so the next failover reads the names afresh and refills
the DR copy), a retried failback that neither backs up nor restores twice, and a failure that names the
production and the request it answers. Each test names the breaks it catches."""
from datetime import timedelta

from core.cloud import DnsRecord
from core.dr_state import FAILED_OVER, NORMAL
from tests.flow import test_dr_guards
from tests.flow.test_dr import NAME, add_order, alert, back_up, dr_root, has_order
from tests.flow.test_dr_guards import publish_at

make_shop = test_dr_guards.make_shop  # the fixture, shared

MOVED_HOME = "127.0.0.11"


def backups_of_shop(shop) -> float:
    """Backups of production `shop` made by this process (the metrics' count: a backup redone counts twice)."""
    return shop.app.metrics.value("doppel_backup_duration_seconds_count", production="shop")


def test_a_failback_leaves_a_normal_row_holding_nothing_and_its_backup_told_apart(make_shop):
    # Breaks caught: the failback's backup recorded without its reason or its `fb` tag; the row left holding
    # the failback's event, the failover's backups, its kept records or its alarm, or without its detail
    shop = make_shop()
    back_up(shop)
    alert(shop)
    assert shop.app.dr_states.get("shop").state == FAILED_OVER

    shop.publish("failback.requested", production="shop")

    (back,) = shop.events("failback.done")
    backup_id = back.data["backup_id"]
    entry = shop.app.catalogue.get(backup_id)
    assert entry.reason == "failback" and entry.env == "shop" and "-fb" in backup_id
    row = shop.app.dr_states.get("shop")
    assert (row.state, row.holder, row.backup_id, row.dr_backup_id, row.previous_dns, row.alarm_at,
            row.dns_switched) == (NORMAL, None, None, None, [], None, False)
    assert row.detail == f"failed back with {backup_id}"


def test_a_second_failover_reads_the_names_afresh_and_refills_the_dr_copy(make_shop):
    # Breaks caught: the failback keeping the first failover's DNS records (the second failback would point the
    # name at production's old address) or the DR copy's backup id (the second failover, choosing the same
    # verified backup, would serve the DR copy as the first failover left it, with its writes)
    shop = make_shop()  # backup: newest_verified; the failback's backups are not verified
    verified = back_up(shop)
    assert shop.app.backups.verify(verified).ok
    first = alert(shop)
    add_order(dr_root(shop) / "data/shop.db", 5555)  # written in DR
    shop.publish("failback.requested", production="shop")
    assert has_order(shop.production / "data/shop.db", 5555)

    # Production moves to another address; a later alarm (outside the debounce window) fails over again
    shop.app.cloud.switch_dns(DnsRecord(NAME, "A", MOVED_HOME, 300))
    publish_at(shop, "monitor.alert", first.time + timedelta(hours=1), alarm_id="a-shop-2", alarm_name="shop-down",
               severity="critical", previous="ok", current="alarm", reason="down again")

    done = shop.events("failover.done")
    assert len(done) == 2 and done[1].data["backup_id"] == verified
    assert not has_order(dr_root(shop) / "data/shop.db", 5555)  # the verified backup's data, restored again
    assert shop.app.dr_states.get("shop").previous_dns[0]["record"]["value"] == MOVED_HOME

    shop.publish("failback.requested", production="shop")
    assert len(shop.events("failback.done")) == 2
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", MOVED_HOME, 300)


def test_a_failback_retried_until_it_fails_backs_up_and_restores_once_and_says_which_production(make_shop):
    # Breaks caught: a retry backing the DR copy up again or restoring production again (the restore is recorded
    # in the row); the failure naming neither the production, where it probed, nor the request it answers
    shop = make_shop()
    back_up(shop)
    alert(shop)
    (dr_root(shop) / "crontab").unlink()  # the restored production lacks it: every attempt fails at its probe
    before = backups_of_shop(shop)

    request = shop.publish("failback.requested", production="shop")

    (failed,) = shop.events("failback.failed")
    assert (failed.data["production"], failed.data["step"], failed.data["cause_id"]) == ("shop", "failback",
                                                                                         request.id)
    assert f"the DR copy of shop at {shop.production} is not healthy" in failed.data["reason"]
    assert backups_of_shop(shop) == before + 1  # three attempts, one backup
    assert len(list(shop.production.parent.glob(".shop.before-failback-*"))) == 1  # and one restore
    assert shop.app.dr_states.get("shop").state == FAILED_OVER
