"""The guards of disaster recovery on the embedded bus, each test named by what it catches when it breaks:
the health probes, which backup is restored, the DNS records kept across a retried failover, where the row
ends after a failure, a cleared pending alarm, and RPO / RTO measured from the alarm."""
import threading
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.broker import event_message
from core.cloud import DnsRecord
from core.dr_state import FAILED_OVER, FAILING_OVER, NORMAL, PENDING, SYNCING
from doppel.cli.common import build_event
from tests.flow.conftest import Shop
from tests.flow.test_dr import DR_ADDRESS, HOME, NAME, alert, back_up, dr_policy, dr_root, frozen_types


class Health:
    """A loopback HTTP health endpoint that answers the statuses it is given, then 200; it counts the probes."""

    def __init__(self, *statuses: int):
        self.statuses, self.probes = list(statuses), 0
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                health.probes += 1
                status = health.statuses.pop(0) if health.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/health"

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def make_shop(tmp_path, monkeypatch):
    """A sample production with the DR policy `dr_policy(**overrides)`, its name pointing home."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    made = []

    def make(**overrides):
        shop = Shop(tmp_path, dr=dr_policy(**overrides))
        shop.app.cloud.switch_dns(DnsRecord(NAME, "A", HOME, 300))
        made.append(shop)
        return shop
    yield make
    for shop in made:
        shop.app.close()


@pytest.fixture
def health():
    made = []

    def make(*statuses):
        made.append(Health(*statuses))
        return made[-1]
    yield make
    for server in made:
        server.close()


def publish_at(shop, event_type: str, when, **data):
    """Publish an event whose time is `when` (an alarm raised a while ago), and run the bus until idle."""
    event = replace(build_event(event_type, data, source="test"), time=when)
    shop.app.broker.publish([event_message(event)])
    shop.app.broker.run_until_idle(timeout=120)
    return event


def verified_then_unverified(shop) -> tuple[str, str]:
    """Two backups: the older verified (as a drill would), the newer not."""
    older = back_up(shop)
    assert shop.app.backups.verify(older).ok
    newer = back_up(shop)
    return older, newer


# -- the probes ------------------------------------------------------------------------------------------------
def test_a_dr_copy_that_fails_the_health_probe_is_never_switched_to(make_shop):
    # Breaks caught: the probe of the restored files disabled, or its problems ignored
    shop = make_shop(health={"paths": ["app", "data/shop.db", "app/maintenance.html"]})
    back_up(shop)  # production has no app/maintenance.html: the DR copy will not have it either

    alert(shop)

    (failed,) = shop.events("failover.failed")
    assert f"the DR copy of shop at {dr_root(shop)} is not healthy: " in failed.data["reason"]  # what, and where
    assert "app/maintenance.html is missing" in failed.data["reason"]
    assert shop.events("failover.done") == []
    assert shop.app.cloud.get_dns(NAME).value == HOME
    row = shop.app.dr_states.get("shop")
    assert row.state == NORMAL and not row.dns_switched and row.holder is None
    assert frozen_types(shop) == set()  # given the lock back: the jobs run again


def test_a_dr_copy_whose_http_probe_fails_fails_the_failover_after_the_switch_and_says_what_to_do(make_shop, health):
    # Breaks caught: the HTTP probe's status ignored; the row moved back to normal (or released) although the
    # name already points at the DR copy
    endpoint = health(503, 503, 503)  # as many as the bus's attempts
    shop = make_shop(health={"url": endpoint.url})
    back_up(shop)

    alert(shop)

    (failed,) = shop.events("failover.failed")
    assert f"the DR copy of shop at {endpoint.url} is not healthy: " in failed.data["reason"]
    assert f"{endpoint.url} answered 503, not 200" in failed.data["reason"]
    assert "doppel dr failback shop" in failed.data["reason"] and endpoint.probes == 3
    assert shop.events("failover.done") == []
    row = shop.app.dr_states.get("shop")
    assert row.state == FAILING_OVER and row.dns_switched and "already points at the DR copy" in row.detail
    assert row.previous_dns == [{"name": NAME, "type": "A", "record": DnsRecord(NAME, "A", HOME, 300).to_dict()}]
    assert frozen_types(shop) == {"sync.due", "backup.due"}  # the jobs stay frozen: production is not home

    # and from there a failback brings production and its name home
    shop.publish("failback.requested", production="shop")
    assert len(shop.events("failback.done")) == 1
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)
    assert shop.app.dr_states.get("shop").state == NORMAL and frozen_types(shop) == set()


def test_a_retried_failover_keeps_the_records_read_before_the_first_switch(make_shop, health):
    # Break caught: a retry reading the records again (they point at the DR copy by then), so the failback would
    # "restore" the DR address
    endpoint = health(503)  # the first attempt fails after its switch, the retry succeeds
    shop = make_shop(health={"url": endpoint.url})
    back_up(shop)

    alert(shop)

    assert len(shop.events("failover.done")) == 1 and endpoint.probes == 2
    assert shop.worker.stats.counts["retried:failover"] == 1
    shop.publish("failback.requested", production="shop")
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)


class DnsDownFor:
    """The local records file behind a DNS server that fails to switch one name while `down`."""

    def __init__(self, records, name: str):
        self.records, self.name, self.down = records, name, True

    def get(self, name, type="A"):
        return self.records.get(name, type)

    def switch(self, record):
        if self.down and record.name == self.name:
            raise ConnectionError(f"the DNS server did not answer for {record.name}")
        return self.records.switch(record)

    def delete(self, name, type="A", ignore_missing=True):
        return self.records.delete(name, type, ignore_missing=ignore_missing)


def test_a_failover_whose_dns_fails_half_way_keeps_the_records_read_and_the_row_for_the_failback(make_shop):
    # Break caught: a failover that moved one name and failed on the next taken for one that moved none (the row
    # back to normal, the records read before the switch forgotten, the jobs thawed: the name moved would stay
    # on the DR copy, and the failback could not put it back)
    api = "api.shop.example.com"
    records = [{"name": NAME, "type": "A", "value": DR_ADDRESS, "ttl": 60},
               {"name": api, "type": "A", "value": DR_ADDRESS, "ttl": 60}]
    shop = make_shop(dns={"records": records})
    shop.app.cloud.switch_dns(DnsRecord(api, "A", HOME, 300))
    back_up(shop)
    dns = DnsDownFor(shop.app.cloud.dns, api)
    shop.app.deps.dns_for = lambda policy: dns

    alert(shop)

    (failed,) = shop.events("failover.failed")
    assert "did not answer for api.shop.example.com" in failed.data["reason"]
    assert "already points at the DR copy" in failed.data["reason"]
    assert shop.app.cloud.get_dns(NAME).value == DR_ADDRESS and shop.app.cloud.get_dns(api).value == HOME
    row = shop.app.dr_states.get("shop")
    assert row.state == FAILING_OVER and row.dns_switched and row.holder is None
    assert [entry["record"]["value"] for entry in row.previous_dns] == [HOME, HOME]
    assert frozen_types(shop) == {"sync.due", "backup.due"}

    # When the DNS server answers again, a failback puts both names back as they were
    dns.down = False
    shop.publish("failback.requested", production="shop")
    assert len(shop.events("failback.done")) == 1
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)
    assert shop.app.cloud.get_dns(api) == DnsRecord(api, "A", HOME, 300)


def test_a_failover_whose_dns_fails_on_the_first_name_forgets_what_it_read_and_reads_again_next_time(make_shop):
    # Break caught: the records read by a failover that moved no name kept for the next failover (whose failback
    # would put back what the name pointed at before, not what it points at now)
    shop = make_shop()
    back_up(shop)
    dns = DnsDownFor(shop.app.cloud.dns, NAME)
    shop.app.deps.dns_for = lambda policy: dns
    first = shop.app.deps.clock() - timedelta(hours=1)
    publish_at(shop, "monitor.alert", first, alarm_id="a-shop-1", alarm_name="shop-down", previous="ok",
               current="alarm")
    assert len(shop.events("failover.failed")) == 1
    row = shop.app.dr_states.get("shop")
    assert row.state == NORMAL and not row.dns_switched and row.previous_dns == []

    # When production moves to a new address, and the next alarm fails over and back
    dns.down = False
    shop.app.cloud.switch_dns(DnsRecord(NAME, "A", "127.0.0.11", 300))
    alert(shop, alarm_id="a-shop-2")
    shop.publish("failback.requested", production="shop")

    # Then the failback puts back the address production has now
    assert len(shop.events("failback.done")) == 1
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", "127.0.0.11", 300)


# -- which backup ----------------------------------------------------------------------------------------------
def test_newest_verified_restores_the_newest_verified_backup_not_the_newest(make_shop):
    # Break caught: the newest backup always chosen, whatever `backup:` says
    shop = make_shop()  # backup: newest_verified, the default
    older, newer = verified_then_unverified(shop)

    alert(shop)

    (done,) = shop.events("failover.done")
    assert done.data["backup_id"] == older != newer
    assert shop.app.dr_states.get("shop").backup_id == older


def test_newest_restores_the_newest_backup_verified_or_not(make_shop):
    shop = make_shop(backup="newest")
    _older, newer = verified_then_unverified(shop)

    alert(shop)

    assert shop.events("failover.done")[0].data["backup_id"] == newer


def test_verified_only_refuses_to_fail_over_without_a_verified_backup(make_shop):
    # Break caught: verified_only falling back to an unverified backup
    shop = make_shop(backup="verified_only")
    back_up(shop)

    alert(shop)

    (failed,) = shop.events("failover.failed")
    assert "no verified backup" in failed.data["reason"] and "doppel dr drill shop" in failed.data["reason"]
    assert shop.events("failover.done") == [] and shop.app.cloud.get_dns(NAME).value == HOME
    assert shop.app.cloud.stack_status("shop-dr") is None  # nothing restored


def test_newest_verified_takes_the_newest_when_none_is_verified(make_shop):
    shop = make_shop()
    back_up(shop)
    newest = back_up(shop)

    alert(shop)

    assert shop.events("failover.done")[0].data["backup_id"] == newest


# -- failback --------------------------------------------------------------------------------------------------
def test_a_failed_failback_leaves_production_failed_over_and_can_be_asked_again(make_shop):
    # Break caught: a failed failback leaving the row failing_back (no failback could be asked again)
    shop = make_shop()
    back_up(shop)
    alert(shop)
    crontab = dr_root(shop) / "crontab"
    kept = crontab.read_bytes()
    crontab.unlink()  # the DR copy lost a file the failback must bring home: it fails at its probe

    shop.publish("failback.requested", production="shop")

    (failed,) = shop.events("failback.failed")
    assert "crontab" in failed.data["reason"]
    row = shop.app.dr_states.get("shop")
    assert row.state == FAILED_OVER and "failback failed" in row.detail and row.dns_switched
    assert shop.app.cloud.get_dns(NAME).value == DR_ADDRESS  # still served from the DR copy

    # When the DR copy is mended and the failback asked again, then it goes home
    crontab.write_bytes(kept)
    shop.publish("failback.requested", production="shop")
    assert len(shop.events("failback.done")) == 1
    assert shop.app.dr_states.get("shop").state == NORMAL
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)


# -- confirm mode ----------------------------------------------------------------------------------------------
def test_an_ok_alarm_clears_a_pending_failover(make_shop):
    # Break caught: an `ok` not clearing `pending` (the alarm that cleared would still wait for a confirmation)
    shop = make_shop(decision="confirm")
    back_up(shop)
    alert(shop)
    assert shop.app.dr_states.get("shop").state == PENDING

    alert(shop, previous="alarm", current="ok")

    row = shop.app.dr_states.get("shop")
    assert row.state == NORMAL and row.holder is None and "cleared" in row.detail
    assert shop.events("failover.done") == [] and shop.app.cloud.get_dns(NAME).value == HOME


def test_rto_counts_from_the_alarm_not_from_the_confirmation(make_shop):
    # Break caught: RTO measured from the confirmation (or from when the failover began)
    shop = make_shop(decision="confirm")
    back_up(shop)
    alarm = publish_at(shop, "monitor.alert", shop.app.deps.clock() - timedelta(hours=1), alarm_id="a-shop-1",
                       alarm_name="shop-down", previous="ok", current="alarm")
    assert shop.app.dr_states.get("shop").state == PENDING
    serving = alarm.time + timedelta(hours=2)
    shop.app.deps.clock = lambda: serving  # the moment the failover finds the DR copy serving

    confirmed = shop.publish("failover.confirmed", production="shop")

    (done,) = shop.events("failover.done")
    assert (confirmed.time - alarm.time).total_seconds() >= 3600  # confirmed an hour after the alarm
    assert done.data["rto_seconds"] == pytest.approx(2 * 3600, abs=0.001)
    # and the debounce window, like the RTO, began with the alarm
    row = shop.app.dr_states.get("shop")
    assert row.alarm_at == alarm.time and row.last_trigger_at == alarm.time


# -- RPO -------------------------------------------------------------------------------------------------------
def test_rpo_is_the_time_from_the_backup_to_the_alarm(make_shop):
    # Break caught: the operands swapped (seconds_between clamps a negative span to 0)
    shop = make_shop()
    backup = shop.app.catalogue.get(back_up(shop))
    alarm_at = backup.created_at + timedelta(minutes=90)

    publish_at(shop, "monitor.alert", alarm_at, alarm_id="a-shop-1", alarm_name="shop-down", previous="ok",
               current="alarm")

    (done,) = shop.events("failover.done")
    assert done.data["rpo_seconds"] == pytest.approx(90 * 60, abs=0.001)


def test_a_drills_rpo_is_the_age_of_the_backup_it_drilled(make_shop):
    # Break caught: the operands swapped (0), or the age taken at another moment than the drill's
    shop = make_shop()
    backup = shop.app.catalogue.get(back_up(shop))
    drilled_at = backup.created_at + timedelta(hours=3)
    shop.app.deps.clock = lambda: drilled_at

    shop.publish("drill.due", production="shop")

    (done,) = shop.events("drill.done")
    (drill,) = shop.app.dr_states.drills("shop")
    assert done.data["verified"] is True and done.data["backup_id"] == backup.id
    assert done.data["rpo_seconds"] == drill.rpo_seconds == pytest.approx(3 * 3600, abs=0.001)


def test_a_confirmed_failover_that_fails_after_its_switch_resumes_on_retry_and_a_second_confirmation_is_ignored(
        make_shop, health):
    # Breaks caught: a retry of the confirmation's own failover not recognised as ours; a confirmation while
    # failed over starting another failover
    endpoint = health(503)
    shop = make_shop(decision="confirm", health={"url": endpoint.url})
    backup = back_up(shop)
    alert(shop)

    shop.publish("failover.confirmed", production="shop")

    (done,) = shop.events("failover.done")
    assert done.data["backup_id"] == backup and shop.worker.stats.counts["retried:failover"] == 1
    row = shop.app.dr_states.get("shop")
    assert row.state == FAILED_OVER and row.alarm_id == "a-shop-1"  # the pending alarm's, kept by the confirmation

    shop.publish("failover.confirmed", production="shop")

    assert len(shop.events("failover.done")) == 1 and shop.events("failover.failed") == []
    assert shop.app.dr_states.get("shop").state == FAILED_OVER and endpoint.probes == 2


def test_a_confirmation_without_an_alarm_fails_over_from_normal_and_waits_for_a_running_sync(make_shop):
    # Breaks caught: a confirmation ignoring a running sync, or refused from normal
    shop = make_shop()
    back_up(shop)
    states, counts = shop.app.dr_states, shop.worker.stats.counts
    assert states.move("shop", (NORMAL,), SYNCING, holder="a-sync-under-way")
    event = build_event("failover.confirmed", {"production": "shop"}, source="test")
    shop.app.broker.publish([event_message(event)])
    shop.app.broker.run_until_idle(timeout=10, max_deliveries=3)
    assert counts["deferred:failover"] >= 1 and shop.events("failover.done") == []

    assert states.move("shop", (SYNCING,), NORMAL, holder=None)
    shop.app.broker.run_until_idle(timeout=60)

    (done,) = shop.events("failover.done")
    assert done.correlation_id == event.id and states.get("shop").state == FAILED_OVER
    assert shop.app.cloud.get_dns(NAME).value == DR_ADDRESS


def test_failback_when_nothing_is_failed_over_does_nothing_and_while_pending_is_refused(make_shop):
    # Breaks caught: a failback claimed from normal or from pending
    shop = make_shop(decision="confirm")
    back_up(shop)

    shop.publish("failback.requested", production="shop")
    assert shop.events("failback.done") == [] and shop.events("failback.failed") == []
    assert shop.app.dr_states.get("shop").state == NORMAL

    alert(shop)
    shop.publish("failback.requested", production="shop")
    (failed,) = shop.events("failback.failed")
    assert "cannot fail shop back while it is pending" in failed.data["reason"]
    assert shop.app.dr_states.get("shop").state == PENDING and shop.app.cloud.get_dns(NAME).value == HOME


def test_a_sync_that_fails_gives_the_lock_back_and_one_already_done_is_skipped(make_shop):
    # Breaks caught: a failed sync leaving the row `syncing` (every failover would wait 30 minutes for it), or
    # its sync.failed not naming the event that failed; a sync restoring again what the DR copy already holds,
    # or its skip not naming that backup
    shop = make_shop()
    backup = back_up(shop)
    manifest = shop.app.backups.find(backup)
    archive = shop.app.backups.store.root / manifest.archive_key
    good = archive.read_bytes()
    archive.write_bytes(good[: len(good) // 2])  # a truncated archive: its restore fails

    due = shop.publish("sync.due", production="shop")

    (failed,) = shop.events("sync.failed")
    assert failed.data["production"] == "shop" and failed.data["cause_id"] == due.id
    row = shop.app.dr_states.get("shop")
    assert row.state == NORMAL and row.holder is None and row.dr_backup_id is None

    archive.write_bytes(good)
    shop.publish("sync.due", production="shop")
    shop.publish("sync.due", production="shop")
    first, second = shop.events("sync.done")
    assert first.data["backup_id"] == backup and "skipped" not in first.data
    assert second.data["skipped"] == f"the DR copy already holds backup {backup}"
    assert second.data["backup_id"] == backup
    assert shop.app.dr_states.get("shop").dr_backup_id == backup


def test_a_drill_without_a_backup_or_of_an_unknown_production_fails_saying_why(make_shop):
    shop = make_shop()

    due = shop.publish("drill.due", production="shop")
    shop.publish("drill.due", production="nosuch")

    first, second = shop.events("drill.failed")
    assert first.data["production"] == "shop" and "has no backup to drill" in first.data["reason"]
    assert first.data["cause_id"] == due.id  # which drill.due failed
    assert second.data["production"] == "nosuch" and "no such production" in second.data["reason"]
    assert shop.app.dr_states.drills() == []


def test_a_failover_given_up_after_its_switch_goes_ahead_when_asked_again(make_shop, health):
    # As its failover.failed says: fix the cause and run `doppel dr failover` again (a failover.confirmed)
    endpoint = health(503, 503, 503)
    shop = make_shop(health={"url": endpoint.url})
    backup = back_up(shop)
    alert(shop)
    assert shop.app.dr_states.get("shop").state == FAILING_OVER

    shop.publish("failover.confirmed", production="shop")  # the endpoint answers 200 now

    (done,) = shop.events("failover.done")
    assert done.data["backup_id"] == backup and shop.app.dr_states.get("shop").state == FAILED_OVER
    shop.publish("failback.requested", production="shop")
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)  # the records read the first time
