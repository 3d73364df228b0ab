"""What a failover leaves in the DR row (who holds it, which alarm, the debounce window, what `doppel dr status`
shows) and which copy it serves, on the embedded bus; each test named by what it catches when it breaks."""
import re
import sys
from datetime import timedelta

from bus import topology
from core.broker import H_ERROR
from core.dr_state import FAILED_OVER, FAILING_OVER, NORMAL, PENDING, SYNCING
from functions import failover
from tests.flow import test_dr_guards as guards
from tests.flow.test_dr import DR_ADDRESS, HOME, NAME, add_order, alert, back_up, dr_root, frozen_types, has_order
from tests.flow.test_dr_guards import publish_at

make_shop, health = guards.make_shop, guards.health  # its fixtures

REASON = "http 5xx above 50% for 3 periods"  # what alert() says
CONFIRM = re.compile(r"(x_)?confirm(__mutmut_\w+)?")


def alarm_at(shop, when, alarm_id="a-shop-1", previous="ok", current="alarm"):
    return publish_at(shop, "monitor.alert", when, alarm_id=alarm_id, alarm_name="shop-down", previous=previous,
                      current=current, reason=REASON)


# -- which copy, and what the row says -----------------------------------------------------------------------------
def test_a_dr_copy_warmed_with_an_older_backup_is_restored_again_with_the_newer(make_shop):
    # Breaks caught: a DR copy kept because it is not empty although it holds an older backup (the failover would
    # serve stale data while failover.done names the newer backup), or the backup it now holds not recorded
    shop = make_shop()
    older = back_up(shop)
    shop.publish("sync.due", production="shop")
    assert shop.app.dr_states.get("shop").dr_backup_id == older
    add_order(shop.production / "data/shop.db", 5555)
    newer = back_up(shop)

    alert(shop)

    (done,) = shop.events("failover.done")
    assert done.data["backup_id"] == newer != older
    assert has_order(dr_root(shop) / "data/shop.db", 5555)
    row = shop.app.dr_states.get("shop")
    assert row.state == FAILED_OVER and row.dr_backup_id == row.backup_id == newer
    # `doppel dr status` says why it failed over; `doppel schedule list` why the jobs are paused
    assert row.alarm_id == "a-shop-1" and row.detail == REASON
    (pause,) = [p for p in shop.app.deps.scheduler.pauses() if "sync.due" in p.selector["types"]]
    assert pause.reason == "failover of shop"


def test_a_confirmation_that_fails_before_its_switch_gives_the_lock_back_and_says_what_failed(make_shop):
    # Breaks caught: the confirmation's failover not holding the row (its failure would leave it failing_over and
    # the jobs frozen), or the failover.failed of a confirmation not naming its production and its cause
    shop = make_shop()  # no backup yet: the failover fails at choosing one

    confirmed = shop.publish("failover.confirmed", production="shop")

    (failed,) = shop.events("failover.failed")
    assert failed.data["production"] == "shop" and failed.data["cause_id"] == confirmed.id
    assert failed.data["step"] == "failover" and "no backup to restore" in failed.data["reason"]
    row = shop.app.dr_states.get("shop")
    assert row.state == NORMAL and row.holder is None and "no backup to restore" in row.detail
    assert frozen_types(shop) == set() and shop.app.cloud.get_dns(NAME).value == HOME


def test_a_confirmation_while_another_failover_holds_the_row_neither_starts_one_nor_releases_it(make_shop):
    # Breaks caught: a confirmation starting a second failover while one is under way, or a failure of an event
    # that does not hold the row giving that row back (the failover under way would lose its lock)
    shop = make_shop()
    back_up(shop)
    states = shop.app.dr_states
    assert states.move("shop", (NORMAL,), FAILING_OVER, holder="an-alarm-under-way")

    confirmed = shop.publish("failover.confirmed", production="shop")
    failover.on_failure(confirmed, "it failed", shop.app.deps.for_event(confirmed, failover.NAME, "failure",
                                                                        failover.EMITS))

    assert shop.events("failover.done") == [] and shop.app.cloud.get_dns(NAME).value == HOME
    row = states.get("shop")
    assert row.state == FAILING_OVER and row.holder == "an-alarm-under-way"


def test_a_given_up_failover_taken_up_by_another_confirmation_meanwhile_is_not_taken_twice(make_shop, health):
    # Break caught: a confirmation taking up a given-up failover whoever took it since it read the row (two
    # failovers of one production at once)
    endpoint = health(503, 503, 503)
    shop = make_shop(health={"url": endpoint.url})
    back_up(shop)
    alert(shop)
    states = shop.app.dr_states
    assert states.get("shop").state == FAILING_OVER and states.get("shop").holder is None
    read = states.get

    def another_takes_it_after_the_last_read(production):
        row = read(production)
        # failover.confirm's reads (mutmut runs it as x_confirm__mutmut_orig, or a numbered mutant)
        if CONFIRM.fullmatch(sys._getframe(1).f_code.co_name) and row.holder is None:
            confirm_reads.append(row)
            if len(confirm_reads) == 2:  # the read its move relies on: another confirmation takes the row now
                assert states.move(production, (FAILING_OVER,), FAILING_OVER, unheld=True,
                                   holder="another-confirmation")
        return row
    confirm_reads = []
    shop.app.dr_states.get = another_takes_it_after_the_last_read

    shop.publish("failover.confirmed", production="shop")

    assert shop.events("failover.done") == [] and endpoint.probes == 3
    assert read("shop").holder == "another-confirmation"


def test_a_confirmation_without_an_alarm_starts_the_window_and_names_its_own_alarm(make_shop):
    # Breaks caught: a confirmation from normal not recording its alarm id or its time (the debounce window
    # would not start, and `doppel dr status` would name no alarm, or an older one)
    shop = make_shop()
    back_up(shop)
    when = shop.app.deps.clock() - timedelta(hours=1)

    publish_at(shop, "failover.confirmed", when, production="shop", alarm_id="ticket-7")

    row = shop.app.dr_states.get("shop")
    assert row.state == FAILED_OVER and row.alarm_id == "ticket-7"
    assert row.alarm_at == when and row.last_trigger_at == when
    shop.publish("failback.requested", production="shop")
    alarm_at(shop, when + timedelta(minutes=5))  # inside the window the confirmation began
    assert len(shop.events("failover.done")) == 1 and shop.app.dr_states.get("shop").state == NORMAL


# -- alarms ------------------------------------------------------------------------------------------------------
def test_an_alarm_neither_ok_nor_alarm_leaves_a_pending_failover_pending(make_shop):
    # Breaks caught: any alert clearing `pending` (an `insufficient data` would drop the alarm waiting for a
    # confirmation); the alarm's reason not kept for `doppel dr status`
    shop = make_shop(decision="confirm")
    back_up(shop)
    alert(shop)

    alert(shop, previous="alarm", current="insufficient data")

    row = shop.app.dr_states.get("shop")
    assert row.state == PENDING and row.holder is not None and row.alarm_id == "a-shop-1" and row.detail == REASON
    shop.publish("failover.confirmed", production="shop")
    assert len(shop.events("failover.done")) == 1


def test_after_a_failback_a_repeat_is_ignored_and_an_alarm_at_the_windows_end_fails_over(make_shop):
    # Breaks caught: a repeat (previous: alarm) taken for a transition once the window is over, and the window
    # closed one instant late (an alarm exactly `debounce` after the last one is a new one)
    shop = make_shop()  # debounce: 10m
    back_up(shop)
    first = shop.app.deps.clock() - timedelta(hours=1)
    alarm_at(shop, first)
    shop.publish("failback.requested", production="shop")
    assert shop.app.dr_states.get("shop").state == NORMAL

    alarm_at(shop, first + timedelta(minutes=30), previous="alarm")  # Aodh's repeat_actions, long after
    assert len(shop.events("failover.done")) == 1 and shop.app.dr_states.get("shop").state == NORMAL

    alarm_at(shop, first + timedelta(minutes=10), alarm_id="a-shop-2")

    assert len(shop.events("failover.done")) == 2 and shop.app.dr_states.get("shop").alarm_id == "a-shop-2"


def test_a_new_alarm_while_failed_over_and_past_the_window_is_ignored_without_a_failure(make_shop):
    # Break caught: the alarm's id misread while saying why it is ignored (the handler would fail, be retried,
    # parked, and a failover.failed would report a failover that never began)
    shop = make_shop()
    back_up(shop)
    alarm_at(shop, shop.app.deps.clock() - timedelta(hours=1))

    alarm_at(shop, shop.app.deps.clock(), alarm_id="a-shop-2")

    assert len(shop.events("failover.done")) == 1 and shop.events("failover.failed") == []
    assert shop.worker.stats.counts["parked:failover"] == 0 and shop.worker.stats.counts["retried:failover"] == 0
    row = shop.app.dr_states.get("shop")
    assert row.state == FAILED_OVER and row.alarm_id == "a-shop-1"


# -- a running sync ----------------------------------------------------------------------------------------------
def test_a_sync_exactly_as_old_as_the_wait_is_still_waited_for_and_the_deferral_says_why(make_shop):
    # Breaks caught: the sync taken for dead one instant early; the deferral's reason (the ledger's, what
    # `doppel events` shows) lost
    shop = make_shop()
    back_up(shop)
    states, counts = shop.app.dr_states, shop.worker.stats.counts
    assert states.move("shop", (NORMAL,), SYNCING, holder="a-sync-under-way")
    since = states.get("shop").since
    shop.app.deps.clock = lambda: since + timedelta(seconds=failover.SYNC_WAIT_S)

    alarm = publish_at_most(shop, 3, alarm_id="a-shop-1")  # a few deliveries: it defers each time

    assert counts["deferred:failover"] >= 1 and shop.events("failover.done") == []
    (entry,) = [e for e in shop.app.ledger.entries(event_ids=[alarm.id]) if e.function == "failover"]
    assert entry.result["error"] == (f"deferred 5 s: a sync of shop is swapping the DR copy (since {since:%H:%M:%S} "
                                     "UTC); the failover goes ahead once it is done")

    # One instant later the sync is taken for dead: the failover goes ahead
    shop.app.deps.clock = lambda: since + timedelta(seconds=failover.SYNC_WAIT_S + 0.001)
    shop.app.broker.run_until_idle(timeout=60)
    assert len(shop.events("failover.done")) == 1 and shop.app.cloud.get_dns(NAME).value == DR_ADDRESS


def publish_at_most(shop, deliveries: int, **data):
    from core.broker import event_message
    from doppel.cli.common import build_event
    event = build_event("monitor.alert", {"alarm_name": "shop-down", "previous": "ok", "current": "alarm",
                                          "reason": REASON, **data}, source="test")
    shop.app.broker.publish([event_message(event)])
    shop.app.broker.run_until_idle(timeout=10, max_deliveries=deliveries)
    return event


# -- a production without a policy -------------------------------------------------------------------------------
def test_a_confirmation_for_a_production_without_a_policy_is_parked_with_the_fix_alone(make_shop):
    # Break caught: the compensation of a failover that never began failing too (its error added to the reason)
    shop = make_shop()

    shop.publish("failover.confirmed", production="nosuch")

    parked = shop.app.broker.get(topology.dead_queue("failover"))
    assert parked.message.headers[H_ERROR] == ("production 'nosuch' has no DR policy (policies: shop); add "
                                               "dr.nosuch to doppel.yaml (docs/dr.md)")
    parked.ack()
    assert shop.events("failover.failed") == []
