"""A handler that raises Deferred comes back later through a delay queue, its attempt not counted."""
from dataclasses import replace

from bus import topology
from bus.retry import RetryPolicy
from core.broker import H_ATTEMPT, H_ERROR, event_message
from core.errors import Deferred
from schemas.envelope import Event
from tests.harness import make_function


def test_the_nearest_delay_step_is_chosen_and_the_longest_caps_it():
    policy = RetryPolicy(attempts=5, first_delay_ms=1000, factor=2)  # delays 1 s, 2 s, 4 s, 8 s

    assert [policy.step_nearest(s) for s in (0, 1, 1.4, 1.6, 3.1, 5, 7, 8, 1800)] == [1, 1, 1, 2, 3, 3, 4, 4, 4]
    assert RetryPolicy(attempts=1).step_nearest(5) == 1  # no delay queue: the first step's name, as retries use


def test_a_deferred_delivery_goes_to_the_nearest_delay_queue_with_its_attempt_unchanged(memory_bus):
    bus = memory_bus  # delays 200 ms and 400 ms
    name, runs, ready = "waits", [], []

    def handle(event, deps):
        runs.append(event.id)
        if not ready:
            raise Deferred(0.5, "a sync is swapping the DR copy")
        return []

    worker = bus.worker([make_function(name, "env.requested", handle)])
    event = Event(type="env.requested", source="test", data={"env": "perf-test", "production": "shop"})
    message = event_message(event)
    # Given a delivery on its second attempt (its first failed)
    worker.broker.publish([replace(message, headers={**message.headers, H_ATTEMPT: 2})])

    # When its handler defers
    worker.broker.run_until_idle(max_deliveries=1)

    # Then it waits in the 400 ms delay queue (the nearest to 0.5 s), still on attempt 2, the reason in its headers
    assert worker.broker.depth(topology.delay_queue(name, 1)) == 0
    delayed = worker.broker.get(topology.delay_queue(name, 2))
    assert delayed.message.headers[H_ATTEMPT] == 2 and "sync is swapping" in delayed.message.headers[H_ERROR]
    delayed.nack(requeue=True)  # back where it was
    counts = worker.stats.counts
    assert counts[f"deferred:{name}"] == 1 and counts[f"retried:{name}"] == 0 and counts[f"handled:{name}"] == 0
    # and the ledger let the key go, so the redelivery may claim it
    (entry,) = bus.ledger.entries(event_ids=[event.id])
    assert entry.status != "done" and "sync is swapping" in entry.result["error"]

    # When it comes back and the handler is ready
    ready.append(True)
    bus.settle()

    # Then it ran once more, to the end
    assert runs == [event.id, event.id] and counts[f"handled:{name}"] == 1 and counts[f"parked:{name}"] == 0
