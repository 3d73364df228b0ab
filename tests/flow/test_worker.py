"""The worker's promises, on the in-memory bus and on a real RabbitMQ alike."""
import json
import threading

import pytest

from bus import topology
from bus.ledger import MAX_TAKEOVERS
from bus.worker import Worker
from core.broker import H_ATTEMPT, H_ERROR, H_ERROR_KIND, H_REDRIVEN_AT, Message, event_message
from core.errors import PermanentError
from schemas.envelope import Event
from tests.harness import make_function


def requested(env="perf-test", **extra):
    return Event(type="env.requested", source="test", data={"env": env, "production": "shop", **extra})


def parked(bus, name):
    broker = bus.workers[0].broker
    taken = []
    while (delivery := broker.get(topology.dead_queue(name))) is not None:
        taken.append(delivery)
    for delivery in taken:
        delivery.nack(requeue=True)
    return [d.message for d in taken]


def test_handled_once_and_emitted_events_keep_the_correlation_id(bus):
    # Given a function that turns env.requested into env.ready, and another that records env.ready
    seen = []
    first = make_function(f"a{bus.prefix}", "env.requested",
                          lambda e, deps: [deps.emit("env.ready", env=e.data["env"], endpoints={"url": "http://x"})],
                          emits=("env.ready",))
    second = make_function(f"b{bus.prefix}", "env.ready", lambda e, deps: seen.append(e) or [])
    bus.worker([first, second])
    cause = requested()

    # When the request is published
    bus.publish(cause)
    # (the first's completion is counted after its ledger write, which may follow the second's run)
    bus.settle(lambda: len(seen) == 1 and bus.workers[0].stats.counts[f"handled:a{bus.prefix}"] == 1)

    # Then the emitted event joined the request's chain
    assert seen[0].correlationid == cause.id
    assert seen[0].type == "env.ready" and seen[0].source == f"doppel/a{bus.prefix}"
    assert bus.workers[0].stats.counts[f"handled:a{bus.prefix}"] == 1


def test_events_handled_in_one_batch_are_each_counted_in_the_stats_and_the_metrics(bus):
    # Given a dozen events already waiting in a function's queue (RabbitMQ hands them over in batches)
    runs = []
    fn = make_function(f"count{bus.prefix}", "env.requested", lambda e, deps: runs.append(e.id) or [])
    worker = Worker(bus.broker(), [fn], bus.ledger, bus.deps, retry=bus.retry, prefetch=16, reporter=bus.reporter)
    worker.declare()
    worker.broker.publish([event_message(requested(f"env-{n}")) for n in range(12)])

    # When the worker starts on them
    worker.start()
    bus.workers.append(worker)
    bus.settle(lambda: worker.stats.counts[f"handled:count{bus.prefix}"] == 12)

    # Then each was run once and counted once, in the stats and in Prometheus' counter alike
    assert len(set(runs)) == 12 and worker.stats.counts["handled"] == 12
    assert worker.metrics.value("doppel_events_handled_total", function=f"count{bus.prefix}") == 12


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_same_event_delivered_twice_runs_the_function_once(bus):
    runs = []
    fn = make_function(f"once{bus.prefix}", "env.requested", lambda e, deps: runs.append(e.id) or [])
    bus.worker([fn])
    event = requested()

    bus.publish(event)
    bus.publish(event)  # re-published by hand: same id and source
    bus.settle(lambda: bus.workers[0].stats.counts[f"duplicate:once{bus.prefix}"] == 1)

    assert runs == [event.id]


def test_transient_error_is_retried_with_growing_delays_then_parked_with_the_error(bus):
    # Given a function that always fails with a transient error
    attempts = []

    def flaky(event, deps):
        attempts.append(bus.workers[0].broker.now() if bus.kind == "memory" else None)
        raise TimeoutError("cloud API did not answer in 30 s")

    name = f"flaky{bus.prefix}"
    bus.worker([make_function(name, "env.requested", flaky)])

    # When an event reaches it
    bus.publish(requested())
    bus.settle(lambda: bus.workers[0].stats.counts[f"parked:{name}"] == 1)

    # Then it ran `attempts` times, each wait longer than the one before: the broker's own dead-letter record
    # shows the message expired once from the first delay queue (200 ms), then once from the second (400 ms)
    assert len(attempts) == bus.retry.attempts == 3
    (message,) = parked(bus, name)
    assert [(d["queue"], d["reason"], d["count"]) for d in message.headers["x-death"]] == [
        (topology.delay_queue(name, 2), "expired", 1), (topology.delay_queue(name, 1), "expired", 1)]
    if bus.kind == "memory":  # its clock jumps to each delayed message's due time: never shorter than the delay,
        gaps = [b - a for a, b in zip(attempts, attempts[1:])]  # however loaded the machine (no upper bound)
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps
    assert "cloud API did not answer" in message.headers[H_ERROR]
    assert message.headers[H_ERROR_KIND] == "exhausted" and int(message.headers[H_ATTEMPT]) == 3
    assert len(bus.reporter.reports) == 1


def test_permanent_error_is_parked_at_once_and_compensated(bus):
    compensated = []
    name = f"perm{bus.prefix}"

    def refuse(event, deps):
        raise PermanentError("production 'shop' is not in doppel.yaml")

    def on_failure(event, reason, deps):
        compensated.append(reason)
        return [deps.emit("env.failed", env=event.data["env"], step=name, reason=reason, cause_id=event.id)]

    failures = []
    bus.worker([make_function(name, "env.requested", refuse, on_failure=on_failure, emits=("env.failed",)),
                make_function(f"watch{bus.prefix}", "env.failed", lambda e, d: failures.append(e) or [])])
    cause = requested()
    bus.publish(cause)
    bus.settle(lambda: len(failures) == 1)

    assert compensated == ["production 'shop' is not in doppel.yaml"]
    assert failures[0].data["reason"] == compensated[0] and failures[0].correlationid == cause.id
    (message,) = parked(bus, name)
    assert message.headers[H_ERROR_KIND] == "permanent" and int(message.headers[H_ATTEMPT]) == 1


def test_invalid_events_are_parked_at_once_and_others_still_served(bus):
    # Given a worker serving a function
    served = []
    name = f"strict{bus.prefix}"
    bus.worker([make_function(name, "env.requested", lambda e, d: served.append(e.data["env"]) or [])])
    broker = bus.workers[0].broker
    queue = topology.function_queue(name)

    # When a schema violation, malformed JSON and an unknown type arrive, then a good event
    bad_schema = Event(type="env.requested", source="test", data={"env": "Not A Name"})
    broker.publish([
        Message(exchange="", routing_key=queue, body=bad_schema.to_json(), message_id="bad-schema"),
        Message(exchange="", routing_key=queue, body=b"{not json", message_id="bad-json"),
        Message(exchange="", routing_key=queue, body=Event(type="env.sneezed", source="t", data={}).to_json(),
                message_id="bad-type"),
    ])
    bus.publish(requested("good-one"))
    bus.settle(lambda: served == ["good-one"] and bus.workers[0].stats.counts[f"invalid:{name}"] == 3)

    # Then each bad one is parked once, with the reason
    reasons = {m.message_id: m.headers[H_ERROR] for m in parked(bus, name)}
    assert set(reasons) == {"bad-schema", "bad-json", "bad-type"}
    assert "env" in reasons["bad-schema"] and "must be 2-40 characters" in reasons["bad-schema"]
    assert "not JSON" in reasons["bad-json"]
    assert "unknown event type 'env.sneezed'" in reasons["bad-type"]
    assert all(m.headers[H_ERROR_KIND] == "invalid" for m in parked(bus, name))


def test_unreadable_messages_of_any_shape_are_parked_at_once_with_the_reason(bus):
    # Given a worker serving a function
    served = []
    name = f"sturdy{bus.prefix}"
    bus.worker([make_function(name, "env.requested", lambda e, d: served.append(e.data["env"]) or [])])
    broker = bus.workers[0].broker
    queue = topology.function_queue(name)
    time_five = {"specversion": "1.0", "id": "t5", "source": "fuzz", "type": "env.requested", "time": 5,
                 "data": {"env": "poison", "production": "shop"}}

    # When messages arrive that break the reading itself, not only the schema, then a good event
    broker.publish([
        Message(exchange="", routing_key=queue, body=b"[" * 100_000, message_id="too-deep"),
        Message(exchange="", routing_key=queue, body=b"9" * 5000, message_id="too-long"),
        Message(exchange="", routing_key=queue, body=json.dumps(time_five).encode(), message_id="time-five",
                headers={H_ATTEMPT: "many"}),
    ])
    bus.publish(requested("good-one"))
    bus.settle(lambda: served == ["good-one"] and bus.workers[0].stats.counts[f"invalid:{name}"] == 3)

    # Then each is parked once, at once, with the reason; none was put back or retried
    messages = parked(bus, name)
    assert sorted(m.message_id for m in messages) == ["time-five", "too-deep", "too-long"]
    assert all(m.headers[H_ERROR_KIND] == "invalid" and m.headers[H_ERROR] for m in messages)
    counts = bus.workers[0].stats.counts
    assert counts[f"retried:{name}"] == counts[f"deferred:{name}"] == 0


def test_replayed_parked_message_runs_again_after_the_cause_is_fixed(bus):
    broken = threading.Event()
    broken.set()
    done = []
    name = f"fixable{bus.prefix}"

    def handler(event, deps):
        if broken.is_set():
            raise ConnectionError("object store unreachable")
        done.append(event.id)
        return []

    bus.worker([make_function(name, "env.requested", handler)])
    event = requested()
    bus.publish(event)
    bus.settle(lambda: bus.workers[0].stats.counts[f"parked:{name}"] == 1)

    # When the cause is fixed and the parked message replayed to its function
    broken.clear()
    broker = bus.workers[0].broker
    delivery = broker.get(topology.dead_queue(name))
    broker.publish([Message(exchange="", routing_key=topology.function_queue(name), body=delivery.message.body,
                            message_id=delivery.message.message_id)])
    delivery.ack()
    bus.settle(lambda: done == [event.id])
    assert parked(bus, name) == []


def test_a_key_claimed_by_a_live_worker_is_deferred_not_run_twice(memory_bus):
    bus = memory_bus
    runs = []
    name = "held"
    fn = make_function(name, "env.requested", lambda e, d: runs.append(e.id) or [], key=lambda e: "same-key")
    bus.worker([fn], lease_s=30)
    # Given another worker holds the claim on the key, with a live lease
    assert bus.ledger.claim(name, "same-key", "other-worker", 30).value == "run"
    bus.publish(requested())
    bus.brokers[0].run_until_idle(max_deliveries=1)
    assert bus.workers[0].stats.counts[f"deferred:{name}"] == 1
    # When it finishes, the deferred message finds the key done and does not run
    bus.ledger.complete(name, "same-key", "other-worker", {})
    bus.settle()
    assert runs == []
    assert bus.workers[0].stats.counts[f"duplicate:{name}"] == 1


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_a_key_claimed_by_a_dead_worker_is_taken_over_after_its_lease(memory_bus):
    bus = memory_bus
    runs = []
    fn = make_function("orphan", "env.requested", lambda e, d: runs.append(e.id) or [], key=lambda e: "k")
    bus.worker([fn], lease_s=30)
    # Given a worker that claimed the key and died: its lease ran out already
    bus.ledger.claim("orphan", "k", "dead-worker", -1)
    event = requested()
    bus.publish(event)
    bus.settle()
    assert runs == [event.id]


def test_an_unexpected_error_on_one_event_of_a_batch_puts_it_back_and_the_others_run(memory_bus):
    bus = memory_bus
    runs = []

    def handle(event, deps):
        runs.append(event.data["env"])
        if event.data["env"] == "bad":
            raise PermanentError("refused")
        return []
    name = "batchfail"
    worker = bus.worker([make_function(name, "env.requested", handle)])
    broken = {"once": True}
    real_park = worker._park

    def park_fails_once(*args, **kwargs):  # e.g. the broker went away just as the message was to be parked
        if broken.pop("once", False):
            raise RuntimeError("dead-letter publish failed")
        return real_park(*args, **kwargs)
    worker._park = park_fails_once
    # Given three events taken from the function's queue together, the middle one failing for good
    events = [requested("good-1"), requested("bad"), requested("good-2")]
    worker.broker.publish([event_message(e) for e in events])
    batch = [worker.broker.get(topology.function_queue(name)) for _ in events]

    # When the worker handles them as one batch, and parking the bad one breaks
    worker.on_deliveries(worker.functions[0], batch)

    # Then the two good ones were handled and acked, and the bad one went back to its queue, not lost
    assert runs == ["good-1", "bad", "good-2"]
    bus.settle(lambda: all(d.settled for d in batch))  # the good ones' acks follow their completions' commit
    # And once it comes back, it is parked as it should have been
    bus.settle(lambda: worker.stats.counts[f"parked:{name}"] == 1)
    assert worker.stats.counts[f"handled:{name}"] == 2
    assert runs == ["good-1", "bad", "good-2", "bad"]


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_a_claim_that_ran_out_with_its_message_lost_is_published_again_by_the_sweep_and_run_once(memory_bus):
    bus = memory_bus
    runs = []
    name = "lost"
    fn = make_function(name, "env.requested", lambda e, d: runs.append(e.id) or [])
    worker = bus.worker([fn], lease_s=30, sweep_every_s=3600, redrive_after_s=5)
    # Given a worker that claimed an event and died, its message lost with it (nothing is queued)
    event = requested()
    bus.ledger.claim(name, f"{event.source}:{event.id}", "dead-worker", -10, event=event)

    # When the sweep runs, twice in a row
    assert worker.sweep() == 1
    assert worker.sweep() == 0  # re-driven once, not once per sweep

    # Then the event is published again to its function, which runs it once, and it is done
    (message,) = [d.message for d in iter(lambda: bus.brokers[0].get(topology.function_queue(name)), None)]
    assert message.message_id == event.id and H_REDRIVEN_AT in message.headers
    bus.brokers[0].publish([message])
    bus.settle(lambda: runs == [event.id])
    assert [e.status for e in bus.ledger.entries()] == ["done"] and worker.sweep() == 0


def test_an_event_whose_claims_keep_dying_is_abandoned_compensated_and_parked(memory_bus):
    bus = memory_bus
    runs, compensated = [], []
    name = "crasher"
    fn = make_function(name, "env.requested", lambda e, d: runs.append(e.id) or [], key=lambda e: "k",
                       on_failure=lambda e, reason, d: compensated.append(reason) or [])
    bus.worker([fn], lease_s=30)
    # Given an event whose handler took down its worker each time it was claimed (each claim ran out)
    event = requested()
    for n in range(MAX_TAKEOVERS + 1):
        assert bus.ledger.claim(name, "k", f"killed-{n}", -1, event=event).value == "run"

    # When it is delivered once more
    bus.publish(event)
    bus.settle(lambda: bus.workers[0].stats.counts[f"parked:{name}"] == 1)

    # Then it is not run again: its function compensates, and it is parked as abandoned, with why
    assert runs == [] and len(compensated) == 1 and "abandoned" in compensated[0]
    (message,) = parked(bus, name)
    assert message.headers[H_ERROR_KIND] == "abandoned" and f"{MAX_TAKEOVERS + 1} times" in message.headers[H_ERROR]
    # ... a copy of it delivered later is not run either
    bus.publish(event)
    bus.settle(lambda: bus.workers[0].stats.counts[f"parked:{name}"] == 2)
    assert runs == []
    # ... and once reopened and replayed after the cause is fixed (`doppel dlq replay`), it runs
    assert bus.ledger.reopen(name, "k")
    bus.brokers[0].publish([Message(exchange="", routing_key=topology.function_queue(name), body=message.body,
                                    message_id=message.message_id)])
    bus.settle(lambda: runs == [event.id])


def test_a_claim_keeps_its_event_whole_whether_it_came_in_structured_or_binary_mode(bus):
    from sqlalchemy import text
    seen = []
    name = f"keeper{bus.prefix}"
    bus.worker([make_function(name, "env.requested", lambda e, d: seen.append(e.id) or [])])
    queue = topology.function_queue(name)
    # Given one event in structured mode, as Doppel sends it, and one in binary mode (attributes in headers)
    structured, binary = requested("structured"), requested("binary")
    headers = {"ce-specversion": "1.0", "ce-id": binary.id, "ce-source": binary.source, "ce-type": binary.type,
               "ce-time": binary.to_dict()["time"], "ce-correlationid": binary.correlationid}
    bus.workers[0].broker.publish([
        Message(exchange="", routing_key=queue, body=structured.to_json(), message_id=structured.id),
        Message(exchange="", routing_key=queue, body=json.dumps(binary.data).encode(), message_id=binary.id,
                headers=headers, content_type="application/json")])
    bus.settle(lambda: sorted(seen) == sorted([structured.id, binary.id]))

    # Then each claim keeps the whole event, as a sweep would publish it again
    with bus.engine.connect() as conn:
        kept = {row.event_id: Event.from_json(row.event) for row in conn.execute(
            text("SELECT event_id, event FROM idempotency_ledger WHERE function = :f"), {"f": name})}
    assert kept == {structured.id: structured, binary.id: binary}


def test_emitted_events_inherit_a_correlation_id_at_the_limit_and_reach_the_next_function(bus):
    # Given a chain whose correlation id is exactly as long as AMQP allows (85 x 3 bytes)
    seen = []
    first = make_function(f"a{bus.prefix}", "env.requested",
                          lambda e, deps: [deps.emit("env.ready", env=e.data["env"], endpoints={"url": "http://x"})],
                          emits=("env.ready",))
    second = make_function(f"b{bus.prefix}", "env.ready", lambda e, deps: seen.append(e) or [])
    bus.worker([first, second])
    cause = Event(type="env.requested", source="test", data={"env": "perf-test", "production": "shop"},
                  correlationid="€" * 85)

    # When the request is published and handled
    bus.publish(cause)
    bus.settle(lambda: len(seen) == 1)

    # Then what the first function emitted carried it, and was sent and handled in turn
    assert seen[0].correlationid == cause.correlationid
    assert bus.workers[0].stats.counts["parked"] == bus.workers[0].stats.counts["invalid"] == 0


def test_a_handler_that_returns_an_event_the_bus_cannot_carry_is_parked_once_not_retried(bus):
    # Given a function that returns an event whose id is too long for an AMQP message-id
    runs = []

    def handle(event, deps):
        runs.append(event.id)
        return [Event(type="env.ready", source="test", data={"env": "x", "endpoints": {}}, id="x" * 300)]
    name = f"unsendable{bus.prefix}"
    bus.worker([make_function(name, "env.requested", handle)])

    # When an event reaches it
    bus.publish(requested())
    bus.settle(lambda: bus.workers[0].stats.counts[f"parked:{name}"] == 1)

    # Then it ran once and is parked as permanent, with the field and the limit as the reason
    assert len(runs) == 1
    (message,) = parked(bus, name)
    assert message.headers[H_ERROR_KIND] == "permanent"
    assert "message_id is 300 bytes; AMQP short strings hold at most 255" in message.headers[H_ERROR]
