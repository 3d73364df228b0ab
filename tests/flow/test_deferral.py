"""A handler that must wait defers, on the in-memory bus and on a real RabbitMQ alike."""
from core.errors import Deferred
from schemas.envelope import Event
from tests.harness import make_function


def test_a_handler_that_defers_more_often_than_a_message_has_attempts_runs_once_ready_and_is_never_parked(bus):
    # Given a function that is not ready for its first `attempts` deliveries
    name, runs = f"later{bus.prefix}", []

    def handle(event, deps):
        runs.append(event.id)
        if len(runs) <= bus.retry.attempts:
            raise Deferred(0.2, "the DR copy is being swapped")
        return []

    worker = bus.worker([make_function(name, "env.requested", handle)])

    # When an event reaches it
    bus.publish(Event(type="env.requested", source="test", data={"env": "perf-test", "production": "shop"}))
    bus.settle(lambda: worker.stats.counts[f"handled:{name}"] == 1)

    # Then it came back each time without using up an attempt, and ran to the end once ready
    counts = worker.stats.counts
    assert len(runs) == bus.retry.attempts + 1 and counts[f"deferred:{name}"] == bus.retry.attempts
    assert counts[f"retried:{name}"] == 0 and counts[f"parked:{name}"] == 0
