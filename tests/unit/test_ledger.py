"""The idempotency ledger under many threads: one run per key, whatever shares a transaction."""
import sqlite3
import threading

import pytest
from sqlalchemy import event as sql_event
from sqlalchemy import inspect

from bus.group_commit import _Call, _GroupCommit
from bus.ledger import MAX_TAKEOVERS, Claim, Ledger
from schemas.envelope import Event
from tests.support.state_db import migrated_engine, reversing_unordered_selects


def ledger(tmp_path) -> Ledger:
    return Ledger(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))


def claim_all_at_once(ledger: Ledger, keys: list[str], lease_s: float = 30) -> list[tuple[str, Claim]]:
    results, start = [], threading.Barrier(len(keys))

    def claim(n: int, key: str) -> None:
        start.wait()
        results.append((key, ledger.claim("fn", key, f"owner-{n}", lease_s)))
    threads = [threading.Thread(target=claim, args=(n, key)) for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_claims_of_the_same_keys_run_each_key_once(tmp_path):
    # Given 40 threads claiming 10 keys, 4 claims per key, all at the same moment
    book = ledger(tmp_path)
    keys = [f"key-{n % 10}" for n in range(40)]
    # When they claim
    results = claim_all_at_once(book, keys)
    # Then each key is run by exactly one claimant; the others are told it is busy
    assert len(results) == 40
    for key in set(keys):
        outcomes = sorted(claim.value for k, claim in results if k == key)
        assert outcomes == ["busy", "busy", "busy", "run"], key


def test_a_completed_key_is_done_for_every_later_claim(tmp_path):
    book = ledger(tmp_path)
    assert book.claim("fn", "k", "first", 30) is Claim.RUN
    # Given a completion recorded without waiting
    recorded = threading.Event()
    errors = []
    book.complete_many_later([("fn", "k", "first", {"emitted": ["e-1"]})],
                             then=lambda error: (errors.append(error), recorded.set()))
    assert recorded.wait(10) and errors == [None]
    assert [(e.status, e.result) for e in book.entries()] == [("done", {"emitted": ["e-1"]})]
    # When the key is claimed again, even by many at once
    results = claim_all_at_once(book, ["k"] * 8)
    # Then none runs it again
    assert {claim for _key, claim in results} == {Claim.DONE}


def test_a_key_whose_owner_died_is_taken_over_by_exactly_one_claimant(tmp_path):
    book = ledger(tmp_path)
    # Given a claim whose lease ran out (its worker died)
    assert book.claim("fn", "orphan", "dead-worker", -1) is Claim.RUN
    # When eight workers claim it at once
    results = claim_all_at_once(book, ["orphan"] * 8)
    # Then one takes it over and the others wait for its lease
    assert sorted(claim.value for _key, claim in results) == ["busy"] * 7 + ["run"]


def test_a_call_that_breaks_a_shared_transaction_fails_alone():
    # Given a writer that refuses one row, and calls queued behind a slow first transaction
    written, release = [], threading.Event()

    def write(calls):
        if any(call.rows[0].get("first") for call in calls):
            release.wait(10)
        if any(call.rows[0].get("bad") for call in calls):
            raise ValueError("bad row")
        written.extend(call.rows[0]["n"] for call in calls)
    group = _GroupCommit(write)
    outcomes = {}

    def run(n, **row):
        try:
            outcomes[n] = group.run(_Call("claim", [{"n": n, **row}]))
        except ValueError as exc:
            outcomes[n] = exc
    first = threading.Thread(target=run, args=(0,), kwargs={"first": True})
    first.start()
    later = [threading.Thread(target=run, args=(n,), kwargs={"bad": n == 3}) for n in range(1, 6)]
    for thread in later:
        thread.start()
    # When the first transaction ends and the five queued calls share the next one
    release.set()
    for thread in [first, *later]:
        thread.join(10)
    # Then only the bad call failed, and every other was written
    assert isinstance(outcomes.pop(3), ValueError)
    assert sorted(written) == [0, 1, 2, 4, 5]
    assert set(outcomes) == {0, 1, 2, 4, 5}


def test_calls_nobody_waits_for_are_written_and_followed_up():
    written, followed = [], []
    group = _GroupCommit(lambda calls: written.extend(call.rows[0]["n"] for call in calls))
    # When 50 threads each submit a call without waiting
    threads = [threading.Thread(target=group.submit, args=(_Call("finish", [{"n": n}], then=followed.append),))
               for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # Then each is written once (by the group's writer thread) and its follow-up runs once, without error
    group.close()
    assert sorted(written) == list(range(50))
    assert followed == [None] * 50
    # And after close, a submit is written by its own thread before it returns
    group.submit(_Call("finish", [{"n": 50}], then=followed.append))
    assert written[-1] == 50 and len(followed) == 51


def test_a_batch_claim_answers_each_key_as_a_claim_of_its_own_would(tmp_path):
    book = ledger(tmp_path)
    # Given one key done, one held by a live worker, one whose worker died
    assert book.claim("fn", "done", "a", 30) is Claim.RUN
    book.complete("fn", "done", "a", {"emitted": []})
    assert book.claim("fn", "held", "b", 30) is Claim.RUN
    assert book.claim("fn", "orphan", "c", -1) is Claim.RUN
    # When a batch claims them, two new keys, and one new key twice (the same event delivered twice)
    outcomes = book.claim_many([("fn", key, f"w-{n}", None) for n, key in
                                enumerate(["done", "held", "orphan", "new-1", "twice", "twice", "new-2"])], 30)
    # Then each gets its own answer, in order, and the duplicate runs once
    assert outcomes == [Claim.DONE, Claim.BUSY, Claim.RUN, Claim.RUN, Claim.RUN, Claim.BUSY, Claim.RUN]
    # And a batch of completions is written in one go, after which every one of them is done
    written = threading.Event()
    book.complete_many_later([("fn", key, f"w-{n}", {"emitted": []}) for n, key in
                              [(2, "orphan"), (3, "new-1"), (4, "twice"), (6, "new-2")]],
                             then=lambda error: written.set() if error is None else None)
    assert written.wait(10)
    assert book.claim_many([("fn", k, "late", None) for k in ("orphan", "new-1", "twice", "new-2")], 30) == \
        [Claim.DONE] * 4


def test_close_lets_the_held_connection_go_only_after_the_transaction_running_on_another_thread(tmp_path):
    # Given a ledger holding its connection, and a claim in the middle of its transaction on another thread
    book = ledger(tmp_path)
    book.claim("fn", "warm-up", "owner", 30)
    inside, finish = threading.Event(), threading.Event()
    connection_open_throughout = []
    write_in = book._write_in

    def slow_write_in(conn, finishes, claims):
        write_in(conn, finishes, claims)
        if claims:
            inside.set()
            finish.wait(5)
            connection_open_throughout.append(not conn.closed)
    book._write_in = slow_write_in
    claimer = threading.Thread(target=lambda: book.claim("fn", "during-close", "owner", 30))
    claimer.start()
    assert inside.wait(5)

    # When the ledger is closed meanwhile
    closer = threading.Thread(target=book.close)
    closer.start()
    closer.join(0.3)

    # Then close waits for that transaction, which ends on an open connection; then nothing is held
    assert closer.is_alive()
    finish.set()
    claimer.join(5)
    closer.join(5)
    assert not closer.is_alive() and connection_open_throughout == [True]
    assert book._engine.pool.checkedout() == 0
    # and the ledger still answers, each transaction on a connection of its own
    assert book.claim("fn", "during-close", "other", 30) is Claim.BUSY
    assert book.claim("fn", "after-close", "owner", 30) is Claim.RUN
    assert book._engine.pool.checkedout() == 0


def test_a_claim_that_ran_out_is_handed_to_one_sweeper_once_with_its_event(tmp_path):
    now = [1000.0]
    clock = lambda: now[0]  # noqa: E731
    engine = migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    # Given a claim of a worker that died, whose lease ran out a minute ago, and a live one
    book = Ledger(engine, clock=clock)
    event = Event(type="env.requested", source="test", data={"env": "lost-one", "production": "shop"},
                  correlationid="chain-7")
    book.claim("fn", "lost", "dead-worker", -60, event=event)
    book.claim("fn", "alive", "live-worker", 30, event=event)
    book.claim("other-fn", "lost", "dead-worker", -60, event=event)

    # When two workers' sweeps, each with a ledger of its own, look for claims out for more than 30 s
    first, second = book.take_redrives(["fn"], 30), Ledger(engine, clock=clock).take_redrives(["fn"], 30)

    # Then one of them gets it, with the event as it was claimed; the live one and other functions' are left
    assert [(r.function, r.key) for r in first + second] == [("fn", "lost")]
    assert Event.from_json(first[0].event) == event and first[0].event_type == "env.requested"
    assert first[0].correlation_id == "chain-7"
    # ... and the other function's claim of the same key is still there for that function's sweep
    assert [(r.function, r.key) for r in book.take_redrives(["other-fn"], 30)] == [("other-fn", "lost")]
    # ... nobody gets it again within the next 30 s (30 s is not more than 30 s); after them, if still nobody
    # took the claim over, again
    now[0] += 30
    assert book.take_redrives(["fn"], 30) == []
    now[0] += 1
    assert [r.key for r in book.take_redrives(["fn"], 30)] == ["lost"]
    # ... and not while a delivery that took it over holds it (the live one has run out by now, unrenewed)
    assert book.claim("fn", "lost", "next-worker", 30) is Claim.RUN
    now[0] += 31
    assert [r.key for r in book.take_redrives(["fn"], 30)] == ["alive"]


def test_claims_that_run_out_again_and_again_are_abandoned_until_reopened(tmp_path):
    book = ledger(tmp_path)
    # Given a key whose claim ran out, then was taken over and ran out again MAX_TAKEOVERS times
    for n in range(MAX_TAKEOVERS + 1):
        assert book.claim("fn", "k", f"killed-{n}", -1) is Claim.RUN
    # When it is claimed again, by several deliveries at once
    results = claim_all_at_once(book, ["k"] * 4)
    # Then none runs it: it is abandoned, for all of them
    assert {claim for _key, claim in results} == {Claim.ABANDONED}
    (entry,) = book.entries()
    assert entry.status == "abandoned" and f"{MAX_TAKEOVERS + 1} times in a row" in entry.result["error"]
    # ... until a replay reopens it: then it runs, and its count starts again (the same key of another function,
    # abandoned too, stays so)
    for function, key in (("other-fn", "k"), ("fn", "other-key")):
        for n in range(MAX_TAKEOVERS + 2):
            book.claim(function, key, f"killed-{n}", -1)
    abandoned_at = next(e.updated_at for e in book.entries() if e.key == "k" and e.function == "fn")
    assert book.reopen("fn", "k") and not book.reopen("fn", "k")
    assert next(e.updated_at for e in book.entries() if e.key == "k" and e.function == "fn") > abandoned_at
    assert book.claim("other-fn", "k", "replay", 30) is Claim.ABANDONED
    assert book.claim("fn", "other-key", "replay", 30) is Claim.ABANDONED
    assert book.claim("fn", "k", "replay", -1) is Claim.RUN
    assert book.claim("fn", "k", "after-replay", 30) is Claim.RUN  # ran out once: taken over, not abandoned


def test_a_ledger_made_before_claims_kept_their_event_gets_the_new_columns_from_db_upgrade_and_keeps_its_rows(
        tmp_path):
    # Given a ledger table as an earlier version made it, with a running claim
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE idempotency_ledger (function VARCHAR(64) NOT NULL, key VARCHAR(255) NOT NULL, "
                     "status VARCHAR(16) NOT NULL, owner VARCHAR(64) NOT NULL, lease_until FLOAT NOT NULL, "
                     "event_id VARCHAR(255), event_type VARCHAR(64), correlation_id VARCHAR(255), result TEXT, "
                     "updated_at FLOAT NOT NULL, PRIMARY KEY (function, key))")
        conn.execute("INSERT INTO idempotency_ledger VALUES ('fn', 'old', 'running', 'gone', 0, 'e-1', "
                     "'env.requested', 'c-1', NULL, 0)")
    # When `doppel db upgrade` brings that database (made before migrations) to this schema, and a Ledger opens it
    engine = migrated_engine(path)
    book = Ledger(engine)
    # Then the sweep's partial index is there too
    assert "ix_idempotency_ledger_running" in {i["name"] for i in inspect(engine).get_indexes("idempotency_ledger")}
    # ... and its old claim can be taken over, and is offered to the sweep, without an event to publish
    (redrive,) = book.take_redrives(["fn"], 0)
    assert (redrive.key, redrive.event_id, redrive.event) == ("old", "e-1", None)
    assert book.claim("fn", "old", "new-worker", 30) is Claim.RUN
    assert book.claim("fn", "new", "new-worker", 30) is Claim.RUN


def without(book: Ledger, path: str) -> Ledger:
    """The same ledger taking another of its ways to claim, as databases without the faster statements do."""
    if path in ("core", "no-returning", "alone"):
        book._driver_sql = None  # SQLAlchemy Core statements instead of the driver's own SQL
    if path in ("no-returning", "alone"):
        book._insert_new_returning = None  # no INSERT ... RETURNING: every key is read back
    if path == "alone":
        book._insert_new = None  # no INSERT ... ON CONFLICT DO NOTHING: one savepoint per key
    return book


@pytest.mark.parametrize("path", ["driver", "core", "no-returning", "alone"])
def test_every_way_to_claim_gives_the_same_answers(tmp_path, path):
    book = without(ledger(tmp_path), path)
    assert book.claim("fn", "done", "a", 30) is Claim.RUN
    book.complete("fn", "done", "a", {"emitted": []})
    assert book.claim("fn", "held", "b", 30) is Claim.RUN
    assert book.claim("fn", "orphan", "c", -1) is Claim.RUN
    assert book.claim("fn", "failed", "d", 30) is Claim.RUN
    book.fail("fn", "failed", "d", "boom")

    outcomes = book.claim_many([("fn", key, f"w-{n}", None) for n, key in
                                enumerate(["done", "held", "orphan", "failed", "new", "new"])], 30)

    assert outcomes == [Claim.DONE, Claim.BUSY, Claim.RUN, Claim.RUN, Claim.RUN, Claim.BUSY]
    assert book.claim("other-fn", "done", "e", 30) is Claim.RUN  # keys are per function


@pytest.mark.parametrize("path", ["driver", "core", "no-returning", "alone"])
def test_a_batch_larger_than_one_read_back_answers_every_key(tmp_path, path):
    book = without(ledger(tmp_path), path)
    # Given one key held by a live worker
    assert book.claim("fn", "key-0000", "other", 30) is Claim.RUN
    # When a batch of 1,200 keys of one function claims it and 1,199 new ones (held keys are read back
    # 500 at a time)
    keys = [f"key-{n:04d}" for n in range(1200)]
    outcomes = book.claim_many([("fn", key, f"w-{n}", None) for n, key in enumerate(keys)], 30)

    # Then the held one waits and every new one runs, the 501st and the 1,200th included
    assert outcomes == [Claim.BUSY] + [Claim.RUN] * 1199


def test_an_empty_batch_claims_nothing(tmp_path):
    book = ledger(tmp_path)
    assert book.claim_many([], 30) == []
    assert book.claim("fn", "k", "a", 30) is Claim.RUN  # and the ledger goes on as before


def test_a_write_that_fails_leaves_the_next_one_a_working_connection(tmp_path):
    book = ledger(tmp_path)
    # Given a claim the database refuses (a function name is required): its whole transaction fails
    with pytest.raises(Exception, match="NOT NULL"):
        book.claim_many([(None, "k", "a", None)], 30)
    # Then the next write runs on a fresh connection and succeeds
    assert book.claim("fn", "k", "b", 30) is Claim.RUN
    book.complete("fn", "k", "b", {"emitted": []})
    assert book.claim("fn", "k", "c", 30) is Claim.DONE


def test_renew_extends_only_a_live_claim_of_its_owner(tmp_path):
    now = [1000.0]
    book = Ledger(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), clock=lambda: now[0])
    assert book.claim("fn", "k", "owner", 10) is Claim.RUN

    now[0] += 8
    assert not book.renew("other-fn", "k", "owner", 10)  # the same key and owner, another function's: not this
    assert not book.renew("fn", "other-key", "owner", 10)  # the same function and owner, another key
    assert book.renew("fn", "k", "owner", 10)        # lease now until 1018
    assert [e.updated_at for e in book.entries()] == [1008.0]
    now[0] += 9                                       # 1017: past the first lease, inside the renewed one
    assert book.claim("fn", "k", "thief", 10) is Claim.BUSY
    assert not book.renew("fn", "k", "someone-else", 10)

    now[0] += 2                                       # 1019: the renewed lease ran out
    assert book.claim("fn", "k", "thief", 10) is Claim.RUN
    assert not book.renew("fn", "k", "owner", 10)     # taken over: the old owner's renewal fails
    book.complete("fn", "k", "thief", {"emitted": []})
    assert not book.renew("fn", "k", "thief", 10)     # done: nothing left to renew


def test_entries_say_each_functions_outcome_by_event_or_chain_in_the_order_written(tmp_path):
    now = [1000.0]
    book = Ledger(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), clock=lambda: now[0])
    first = Event(id="e1", type="env.requested", source="t", data={}, correlationid="chain-1")
    second = Event(id="e2", type="snapshot.done", source="t", data={}, correlationid="chain-1")
    other = Event(id="e3", type="env.requested", source="t", data={}, correlationid="chain-2")
    for n, (event, function) in enumerate([(first, "snapshot"), (second, "clone"), (other, "snapshot")]):
        now[0] += 1
        assert book.claim(function, f"key-{n}", "w", 30, event=event) is Claim.RUN
    now[0] += 1
    book.complete("snapshot", "key-0", "w", {"emitted": ["x"]})
    now[0] += 1
    book.fail("clone", "key-1", "w", "boom")

    chain = book.entries(correlation_id="chain-1")
    assert [(e.function, e.status, e.event_id, e.event_type) for e in chain] == [
        ("snapshot", "done", "e1", "env.requested"), ("clone", "failed", "e2", "snapshot.done")]
    assert chain[0].result == {"emitted": ["x"]} and chain[1].result == {"error": "boom"}
    assert [e.key for e in book.entries(event_ids=["e3"])] == ["key-2"]
    assert [e.event_id for e in book.entries()] == ["e3", "e1", "e2"]  # by when each was last written
    assert [(e.correlation_id, e.updated_at) for e in chain] == [("chain-1", 1004.0), ("chain-1", 1005.0)]
    assert book.entries(event_ids=[]) == []


def test_held_says_whether_a_live_claim_holds_any_of_the_keys(tmp_path):
    now = [1000.0]
    book = Ledger(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), clock=lambda: now[0])
    assert book.claim("fn", "live", "w", 10) is Claim.RUN
    assert book.claim("fn", "done", "w", 10) is Claim.RUN
    book.complete("fn", "done", "w", {"emitted": []})
    assert book.claim("fn", "failed", "w", 10) is Claim.RUN
    book.fail("fn", "failed", "w", "boom")

    assert book.held([("fn", "live")]) and book.held([("fn", "nothing"), ("fn", "live")])
    assert not book.held([]) and not book.held([("fn", "nothing")])
    assert not book.held([("fn", "done"), ("fn", "failed")])
    assert not book.held([("other-fn", "live")])  # keys are per function
    now[0] += 10                                   # the lease's last moment: still held
    assert book.held([("fn", "live")])
    now[0] += 0.5                                  # ran out (its worker died): no longer
    assert not book.held([("fn", "live")])


def test_only_running_claims_out_for_longer_than_asked_are_redriven_a_sweep_at_a_time(tmp_path):
    now = [1000.0]
    book = Ledger(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), clock=lambda: now[0])
    event = Event(type="env.requested", source="test", data={"env": "e", "production": "shop"})
    # Given a claim whose lease ran out 30 s ago exactly, two settled after theirs ran out, 101 out for a minute,
    # and one out for two minutes, claimed last
    assert book.claim("fn", "just-now", "w", -30, event=event) is Claim.RUN
    assert book.claim("fn", "finished", "w", -60, event=event) is Claim.RUN
    book.complete("fn", "finished", "w", {"emitted": []})
    assert book.claim("fn", "failed", "w", -60, event=event) is Claim.RUN
    book.fail("fn", "failed", "w", "boom")
    book.claim_many([("fn", f"lost-{n:03d}", "w", event) for n in range(101)], -60)
    assert book.claim("fn", "oldest", "w", -120, event=event) is Claim.RUN

    # When sweeps look for claims out for more than 30 s
    oldest = book.take_redrives(["fn"], 30, limit=1)
    first, second, third = (book.take_redrives(["fn"], 30) for _ in range(3))

    # Then the one out longest comes first; a sweep takes at most 100, the next the one left; the one out for
    # exactly 30 s and the settled ones are not redriven
    assert [r.key for r in oldest] == ["oldest"]
    assert len(first) == 100 and len(second) == 1 and third == []
    assert sorted(r.key for r in first + second) == [f"lost-{n:03d}" for n in range(101)]


def clocked_ledger(tmp_path, now: list[float]) -> Ledger:
    return Ledger(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), clock=lambda: now[0])


def test_a_claim_is_held_to_the_last_moment_of_its_lease_and_taken_over_only_after(tmp_path):
    # Break caught: a claim taken over at the very moment its lease ends, while `held` still says it is held
    now = [1000.0]
    book = clocked_ledger(tmp_path, now)
    assert book.claim("fn", "k", "owner", 10) is Claim.RUN
    now[0] += 10
    assert book.claim("fn", "k", "thief", 10) is Claim.BUSY
    now[0] += 0.5
    assert book.claim("fn", "k", "thief", 10) is Claim.RUN


def test_a_retry_that_takes_over_a_failed_claim_shows_the_error_until_it_finishes(tmp_path):
    # Break caught: taking a claim over wipes the result it had, so `doppel dlq show` and `doppel trace` lose
    # the error a retry (or a replay) is running after
    book = ledger(tmp_path)
    assert book.claim("fn", "k", "first", 30) is Claim.RUN
    book.fail("fn", "k", "first", "boom")
    assert book.claim("fn", "k", "retry", 30) is Claim.RUN
    assert [(e.status, e.result) for e in book.entries()] == [("running", {"error": "boom"})]


def test_a_failure_starts_the_count_of_claims_that_ran_out_again(tmp_path):
    # Break caught: taking over a failed claim counted as a take-over, so a key that failed once is abandoned
    # one ran-out claim early
    book = ledger(tmp_path)
    assert book.claim("fn", "k", "first", 30) is Claim.RUN
    book.fail("fn", "k", "first", "boom")
    # When the retry's claim and the claims after it run out, MAX_TAKEOVERS + 1 in all
    outcomes = [book.claim("fn", "k", f"killed-{n}", -1) for n in range(MAX_TAKEOVERS + 1)]
    # Then each ran, as the claims of a new key would; the next is abandoned
    assert outcomes == [Claim.RUN] * (MAX_TAKEOVERS + 1)
    assert book.claim("fn", "k", "next", 30) is Claim.ABANDONED


def test_a_key_taken_over_too_often_is_not_abandoned_while_a_live_claim_holds_it(tmp_path):
    # Break caught: a key abandoned under a live worker because its count is full, though that claim has not
    # run out (the handler still running would finish into an abandoned row)
    book = ledger(tmp_path)
    for n in range(MAX_TAKEOVERS):
        assert book.claim("fn", "k", f"killed-{n}", -1) is Claim.RUN
    assert book.claim("fn", "k", "live", 30) is Claim.RUN  # the last take-over the count allows
    assert book.claim("fn", "k", "duplicate", 30) is Claim.BUSY
    assert [e.status for e in book.entries()] == ["running"]
    book.complete("fn", "k", "live", {"emitted": []})
    assert book.claim("fn", "k", "late", 30) is Claim.DONE


def test_an_abandoned_key_says_when_it_was_abandoned_and_abandoning_it_touches_no_other_key(tmp_path):
    # Break caught: the abandoned entry keeps the time of the last claim that ran out, or each later claim
    # writes it again; or abandoning one key abandons every other key whose claims ran out as often
    now = [1000.0]
    book = clocked_ledger(tmp_path, now)
    # Given two keys whose claims ran out MAX_TAKEOVERS + 1 times
    for n in range(MAX_TAKEOVERS + 1):
        now[0] += 1
        assert book.claim("fn", "k", f"killed-{n}", -1) is Claim.RUN
        assert book.claim("fn", "other", f"killed-{n}", -1) is Claim.RUN
    # When one is claimed again, later, and then again
    now[0] += 10
    abandoned_at = now[0]
    assert book.claim("fn", "k", "next", 30) is Claim.ABANDONED
    now[0] += 10
    assert book.claim("fn", "k", "after", 30) is Claim.ABANDONED
    # Then its entry says when it was abandoned; the other key still runs, for the sweep to publish again
    entries = {e.key: e for e in book.entries()}
    assert (entries["k"].status, entries["k"].updated_at) == ("abandoned", abandoned_at)
    assert (entries["other"].status, entries["other"].updated_at) == ("running", 1000.0 + MAX_TAKEOVERS + 1)
    assert [r.key for r in book.take_redrives(["fn"], 0)] == ["other"]


def test_a_sweep_takes_the_claims_out_longest_first_however_the_database_scans_them(tmp_path):
    # Break caught: the sweep's claims in the order the database found them (by the running index on SQLite,
    # by chance elsewhere), so a limited sweep may leave the oldest lost claim for later
    now = [1000.0]
    book = Ledger(reversing_unordered_selects(migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}")),
                  clock=lambda: now[0])
    for key, lease_s in (("middle", -60), ("oldest", -120), ("newest", -45)):
        assert book.claim("fn", key, "dead-worker", lease_s) is Claim.RUN
    assert [r.key for r in book.take_redrives(["fn"], 30)] == ["oldest", "middle", "newest"]


def test_a_claim_another_sweep_redrove_after_this_one_read_it_is_not_redriven_again(tmp_path):
    # Break caught: a sweep marks what it read as stale without checking it still is, so two sweeps that read
    # at the same moment both publish the lost event again
    engine = migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = [1000.0]
    mine, other = Ledger(engine, clock=lambda: now[0]), Ledger(engine, clock=lambda: now[0])
    assert mine.claim("fn", "lost", "dead-worker", -60) is Claim.RUN
    theirs, read = [], []

    def other_sweep_between_my_read_and_my_mark(_conn, _cursor, statement, *_args):
        if not read and statement.lstrip().upper().startswith("SELECT") and "redriven_at" in statement:
            read.append(statement)  # mine: the other sweep's own read goes by
            theirs.append(other.take_redrives(["fn"], 30))
    sql_event.listen(engine, "after_cursor_execute", other_sweep_between_my_read_and_my_mark)

    taken = mine.take_redrives(["fn"], 30)

    assert [[r.key for r in sweep] for sweep in theirs] == [["lost"]]
    assert taken == []
