"""The dr_state row is the failover lock: of many workers moving it at once, exactly one wins."""
import threading
from datetime import datetime, timedelta, timezone

from core.dr_state import FAILED_OVER, FAILING_OVER, NORMAL, DrStates
from tests.support.state_db import migrated_engine


def test_of_eight_racing_failovers_exactly_one_takes_the_lock(tmp_path):
    engine = migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}")
    racers = [DrStates(engine) for _ in range(8)]
    start, won = threading.Barrier(8), []

    def race(states, n):
        start.wait()
        if states.move("shop", (NORMAL,), FAILING_OVER, holder=f"alarm-{n}"):
            won.append(n)

    threads = [threading.Thread(target=race, args=(s, n)) for n, s in enumerate(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(won) == 1
    row = racers[0].get("shop")
    assert row.state == FAILING_OVER and row.holder == f"alarm-{won[0]}"


def test_previous_dns_survives_the_round_trip_and_an_unknown_production_reads_normal(tmp_path):
    states = DrStates(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    assert states.get("nosuch").state == NORMAL
    previous = [{"name": "shop.example.com", "type": "A", "record": None}]
    states.note("shop", previous_dns=previous, dns_switched=True)
    assert states.get("shop").previous_dns == previous and states.get("shop").dns_switched


def test_a_given_up_failover_is_taken_up_again_by_one_confirmation_only(tmp_path):
    states = DrStates(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    assert states.move("shop", (NORMAL,), FAILING_OVER, holder="alarm-1")
    assert not states.move("shop", (FAILING_OVER,), FAILING_OVER, unheld=True, holder="confirm-1")  # still held
    states.note("shop", holder=None)  # given up after its switch

    assert states.move("shop", (FAILING_OVER,), FAILING_OVER, unheld=True, holder="confirm-1")
    assert not states.move("shop", (FAILING_OVER,), FAILING_OVER, unheld=True, holder="confirm-2")
    assert states.get("shop").holder == "confirm-1"


def test_drills_and_rows_read_back_whole_in_order(tmp_path):
    from datetime import datetime, timedelta, timezone

    from core.dr_state import Drill
    states = DrStates(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    t0 = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)
    later = Drill("shop", "b2", t0 + timedelta(days=1), False, 90000.0, 12.5, "sha256 mismatch")
    earlier = Drill("shop", "b1", t0, True, 3600.0, 10.0, "")
    same_time = Drill("blog", "b3", t0, True, 60.0, 1.0, "")
    for drill in (later, earlier, same_time):
        states.record_drill(drill)

    assert states.drills("shop") == [earlier, later]
    assert states.drills() == [earlier, same_time, later]  # by time, then in the order recorded
    states.move("shop", (NORMAL,), FAILING_OVER, holder="a")
    states.move("blog", (NORMAL,), FAILING_OVER, holder="b")
    assert [r.production for r in states.all()] == ["blog", "shop"]


def test_a_move_says_since_when_and_keeps_the_dns_records_it_was_given(tmp_path):
    # Break caught: a move leaves `since` at the previous state's start (a failover's RTO and `doppel dr status`
    # count from it), or stores the DNS records it was given as nothing
    now = [datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)]
    states = DrStates(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"), clock=lambda: now[0])
    previous = [{"name": "shop.example.com", "type": "A", "record": "192.0.2.7"}]
    states.note("shop", detail="made at the start")
    now[0] += timedelta(minutes=5)
    assert states.move("shop", (NORMAL,), FAILING_OVER, holder="alarm-1", previous_dns=previous)
    assert (states.get("shop").since, states.get("shop").previous_dns) == (now[0], previous)
    now[0] += timedelta(minutes=5)
    assert states.move("shop", (FAILING_OVER,), FAILED_OVER, previous_dns=[])
    assert (states.get("shop").since, states.get("shop").previous_dns) == (now[0], [])
