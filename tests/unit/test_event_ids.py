"""Event ids lead with a time, so the ledger keys a worker writes together sit side by side in its index."""
import uuid
from datetime import datetime, timedelta, timezone

import schemas.envelope as envelope
from core.deps import Deps
from schemas.envelope import Event, derived_id, new_event_id, time_ms

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def leading_ms(event_id: str) -> int:
    return uuid.UUID(event_id).int >> 80


def test_a_new_event_id_is_a_uuid7_that_leads_with_its_time_in_milliseconds(monkeypatch):
    # Break caught: ids made as uuid4 again (random: each key of a batch on its own index page)
    monkeypatch.setattr(envelope, "utcnow", lambda: NOON)
    first, second = new_event_id(), new_event_id()
    parsed = uuid.UUID(first)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert leading_ms(first) == time_ms(NOON) == 1_796_299_200_000
    assert first != second  # the same millisecond: the random bits tell them apart

    monkeypatch.setattr(envelope, "utcnow", lambda: NOON + timedelta(milliseconds=1))
    later = new_event_id()
    assert later > max(first, second)  # as text too, which is how the ledger's index orders its keys


def test_an_event_made_without_an_id_gets_a_time_ordered_one():
    event = Event(type="env.requested", source="test", data={})
    assert uuid.UUID(event.id).version == 7
    assert abs(leading_ms(event.id) - time_ms(event.time)) < 60_000


def test_a_derived_id_with_a_time_is_a_stable_uuid8_that_leads_with_that_time():
    made = derived_id("snapshot:k", "cause-1", "snapshot.done", "0", at=NOON)
    parsed = uuid.UUID(made)
    assert (parsed.version, parsed.variant) == (8, uuid.RFC_4122)
    assert leading_ms(made) == time_ms(NOON)
    assert made == derived_id("snapshot:k", "cause-1", "snapshot.done", "0", at=NOON)  # a re-run: the same id
    assert made != derived_id("snapshot:k", "cause-1", "snapshot.done", "1", at=NOON)
    assert made != derived_id("snapshot:k", "cause-2", "snapshot.done", "0", at=NOON)
    # without a time it is the UUIDv5 it always was (the scheduler's and the gateway's ids keep their values)
    assert uuid.UUID(derived_id("schedule", "nightly")).version == 5


def test_times_outside_48_bits_of_milliseconds_are_held_at_the_ends_and_a_naive_time_is_utc():
    assert time_ms(datetime(1960, 1, 1, tzinfo=timezone.utc)) == 0
    assert time_ms(datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc)) < 1 << 48
    assert time_ms(NOON.replace(tzinfo=None)) == time_ms(NOON)
    assert time_ms(NOON.astimezone(timezone(timedelta(hours=-5)))) == time_ms(NOON)


def test_what_a_function_emits_leads_with_its_causes_time_and_a_replay_emits_the_same_id():
    # Break caught: emitted ids derived without the cause's time (random order in the next function's ledger)
    early = Event(type="env.requested", source="test", data={"env": "a", "production": "shop"}, time=NOON)
    late = Event(type="env.requested", source="test", data={"env": "b", "production": "shop"},
                 time=NOON + timedelta(seconds=1))

    def emitted(cause):
        return Deps().for_event(cause, "snapshot", "k", emits=("env.deleted",)).emit("env.deleted", env="a").id

    assert leading_ms(emitted(early)) == time_ms(NOON)
    assert emitted(early) < emitted(late)
    # the cause as a worker reads it back from the bus: the same id again
    assert emitted(Event.from_json(early.to_json())) == emitted(early)
