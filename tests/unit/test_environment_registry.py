"""The environment registry on a real SQLite file with a clock the test moves: requests, the state machine,
its history, TTLs, and the reads the functions and the CLI rely on."""
from datetime import datetime, timedelta, timezone

import pytest

from core.registry import (
    CLONING,
    CONFIGURING,
    DELETED,
    EXPIRING,
    FAILED,
    READY,
    REQUESTED,
    SNAPSHOTTING,
    Registry,
    Transition,
    TransitionRefused,
)
from tests.support.state_db import migrated_engine, reversing_unordered_selects

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(tmp_path):
    now = [T0]
    # SQLite scanning tables backwards: an order the registry promises comes from its own ORDER BY
    registry = Registry(reversing_unordered_selects(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}")),
                        clock=lambda: now[0])

    def tick(seconds=1):
        now[0] += timedelta(seconds=seconds)
    return registry, tick


def ready(registry, tick, name, request, **extra):
    env, created = registry.request(name=name, request_id=request, production="shop", **extra)
    assert created
    for state in (SNAPSHOTTING, CLONING, CONFIGURING):
        tick()
        env = registry.move(env, state, event_id=f"{request}:{state}")
    tick()
    return registry.move(env, READY, event_id=f"{request}:ready", endpoints={"root": f"/envs/{name}"},
                         expires_at=registry.expiry_for(env))


def test_a_request_is_registered_once_and_a_living_name_is_not_given_twice(world):
    registry, tick = world
    env, created = registry.request(name="perf-test", request_id="r1", production="shop", owner="alice",
                                    ttl_seconds=3600, correlation_id="c1", reply_to="https://chat/r")
    again, created_again = registry.request(name="perf-test", request_id="r1", production="shop")
    other, created_other = registry.request(name="perf-test", request_id="r2", production="shop")

    assert created and not created_again and not created_other
    assert again == env and other.request_id == "r1"
    assert (env.state, env.owner, env.ttl_seconds, env.correlation_id, env.reply_to, env.created_at) == (
        REQUESTED, "alice", 3600, "c1", "https://chat/r", T0)
    assert registry.by_request("r1") == env and registry.by_request("r2") is None


def test_moves_follow_the_state_machine_and_the_history_says_who_moved_it_why_and_when(world):
    registry, tick = world
    env = ready(registry, tick, "perf-test", "r1", ttl_seconds=3600)

    with pytest.raises(TransitionRefused, match="perf-test is ready; it cannot become cloning"):
        registry.move(env, CLONING)
    assert registry.move(env, READY) == registry.get(env.id)  # a repeat is a no-op
    tick()
    env = registry.move(env, EXPIRING, event_id="expiry-1", reason="ttl")

    assert env.state == EXPIRING and env.updated_at == T0 + timedelta(seconds=5) and env.reason == "ttl"
    assert env.endpoints == {"root": "/envs/perf-test"}
    assert env.expires_at == T0 + timedelta(seconds=4, hours=1)  # the TTL counted from when it became ready
    assert registry.transitions(env) == [
        Transition(None, REQUESTED, "r1", None, T0),
        Transition(REQUESTED, SNAPSHOTTING, "r1:snapshotting", None, T0 + timedelta(seconds=1)),
        Transition(SNAPSHOTTING, CLONING, "r1:cloning", None, T0 + timedelta(seconds=2)),
        Transition(CLONING, CONFIGURING, "r1:configuring", None, T0 + timedelta(seconds=3)),
        Transition(CONFIGURING, READY, "r1:ready", None, T0 + timedelta(seconds=4)),
        Transition(READY, EXPIRING, "expiry-1", "ttl", T0 + timedelta(seconds=5)),
    ]


def test_reads_by_state_name_and_ttl(world):
    registry, tick = world
    kept = ready(registry, tick, "kept", "r1")                    # no TTL
    short = ready(registry, tick, "short", "r2", ttl_seconds=10)
    failed, _ = registry.request(name="broken", request_id="r3", production="shop")
    failed = registry.move(failed, FAILED, reason="snapshot: boom")
    gone = ready(registry, tick, "short-lived", "r4", ttl_seconds=5)
    gone = registry.move(registry.move(gone, EXPIRING), DELETED)
    building, _ = registry.request(name="building", request_id="r5", production="shop")
    building = registry.move(building, SNAPSHOTTING)

    assert [e.name for e in registry.all()] == ["kept", "short", "building"]
    assert [e.name for e in registry.all(include_ended=True)] == ["kept", "short", "broken", "short-lived",
                                                                   "building"]
    assert [e.name for e in registry.in_state(SNAPSHOTTING)] == ["building"]
    assert sorted(e.name for e in registry.in_state(READY, FAILED)) == ["broken", "kept", "short"]
    assert registry.living("broken") is None and registry.latest("broken") == failed
    assert registry.expiry_for(kept) is None
    assert registry.expired(short.expires_at - timedelta(seconds=1)) == []
    assert [e.name for e in registry.expired(short.expires_at)] == ["short"]  # due at its time, not before


def test_latest_is_the_newest_of_a_reused_name(world):
    registry, tick = world
    first, _ = registry.request(name="perf-test", request_id="r1", production="shop")
    registry.move(first, FAILED, reason="boom")
    second, created = registry.request(name="perf-test", request_id="r2", production="shop")
    assert created and registry.latest("perf-test") == second and registry.living("perf-test") == second


def test_a_move_that_loses_a_race_reads_the_state_again_and_moves_from_there_with_all_it_was_given(tmp_path):
    # Given an environment requested, and two workers' registries on one database
    engine = migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}")
    mine, other = Registry(engine), Registry(engine)
    env, _ = mine.request(name="raced", request_id="test/raced", production="shop", data_version="v7")
    assert mine.get(env.id).data_version == "v7"
    read, raced = mine.get, []

    def read_then_lose_the_race(env_id):
        found = read(env_id)
        if not raced:  # between this worker's read and its write, the other worker moves it on
            raced.append(other.move(env, SNAPSHOTTING, event_id="other:snapshotting"))
        return found
    mine.get = read_then_lose_the_race
    until = T0 + timedelta(hours=1)

    # When this worker fails it, having read it as requested
    moved = mine.move(env, FAILED, event_id="mine:failed", reason="production is gone",
                      endpoints={"root": "/nowhere"}, expires_at=until)

    # Then its write did not land on the state it read: it read again and failed it from snapshotting, keeping
    # everything it was given; the other worker's move stands in the history, each once
    assert raced and (moved.state, moved.reason, moved.endpoints, moved.expires_at) == (
        FAILED, "production is gone", {"root": "/nowhere"}, until)
    assert [(t.from_state, t.to_state, t.event_id) for t in mine.transitions(moved)][1:] == [
        (REQUESTED, SNAPSHOTTING, "other:snapshotting"), (SNAPSHOTTING, FAILED, "mine:failed")]


def test_the_census_counts_each_state_and_says_since_when_the_oldest_there_is_there(world):
    # Break caught: the census of every state lumped into one, or without when the one there longest got there
    # (the metric of environments stuck in a state)
    registry, tick = world
    first = ready(registry, tick, "first", "r1")                   # ready at T0 + 4 s
    ready(registry, tick, "second", "r2")                          # ready at T0 + 8 s
    building, _ = registry.request(name="building", request_id="r3", production="shop")  # at T0 + 8 s
    tick()
    registry.move(building, SNAPSHOTTING)                          # at T0 + 9 s
    assert registry.census() == {READY: (2, first.updated_at), SNAPSHOTTING: (1, T0 + timedelta(seconds=9))}


def test_an_extension_moves_the_end_and_says_so_in_the_history_in_the_order_things_happened(tmp_path):
    # Break caught: an extension not counted as a change of the environment (updated_at), its line in the
    # history without the state it was in; or the history in the order the database happened to read it
    now = [T0]
    engine = reversing_unordered_selects(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    registry = Registry(engine, clock=lambda: now[0])

    def tick(seconds=1):
        now[0] += timedelta(seconds=seconds)
    env = ready(registry, tick, "perf-test", "r1", ttl_seconds=3600)
    tick()
    until = T0 + timedelta(hours=5)

    extended = registry.extend(env, until, reason="extended by alice by 4h")

    assert (extended.state, extended.expires_at, extended.updated_at) == (READY, until, now[0])
    assert [(t.from_state, t.to_state, t.event_id, t.reason) for t in registry.transitions(extended)] == [
        (None, REQUESTED, "r1", None), (REQUESTED, SNAPSHOTTING, "r1:snapshotting", None),
        (SNAPSHOTTING, CLONING, "r1:cloning", None), (CLONING, CONFIGURING, "r1:configuring", None),
        (CONFIGURING, READY, "r1:ready", None), (READY, READY, None, "extended by alice by 4h")]
