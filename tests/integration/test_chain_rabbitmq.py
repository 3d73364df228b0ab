"""The environment chain through `doppel worker` processes and the `doppel` CLI on a real RabbitMQ."""
import json

import pytest

from tests.support.chain_site import Site, raw_publish
from tests.support.rabbitmq import node_stopped

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def site(tmp_path, amqp_url):
    site = Site(tmp_path, amqp_url)
    yield site
    site.stop()


def test_doppel_publish_is_handled_once_and_the_chain_keeps_its_correlation_id(site):
    site.start_worker()
    event_id = site.doppel("publish", "env.requested", "--data",
                           '{"env": "mq-copy", "production": "shop"}').stdout.strip()
    site.wait(lambda: "env.ready" in [e["type"] for e in site.events(event_id)])

    chain = site.events(event_id)
    assert [e["type"] for e in chain][:4] == ["env.requested", "snapshot.done", "stack.ready", "env.ready"]
    assert {e["correlationid"] for e in chain} == {event_id}
    requested = chain[0]
    assert [r["function"] for r in requested["results"] if r["status"] == "done"] == ["snapshot"]
    # published again by hand: the same id is not run again
    site.doppel("publish", "env.requested", "--id", event_id, "--source", requested["source"], "--data",
                '{"env": "mq-copy", "production": "shop"}')
    # confirmed, so in snapshot's queue: once RabbitMQ counts none there (ready or unacked), it was taken
    site.wait(lambda: site.queue_messages("doppel.fn.snapshot") == 0, 60, "the resent request to be taken")
    assert [e["type"] for e in site.events(event_id)].count("snapshot.done") == 1
    # (that the worker does not run a handler again for a completed key is counted where it runs, on this
    # RabbitMQ, in tests/flow/test_worker.py::test_same_event_delivered_twice_runs_the_function_once)


def test_a_parked_request_is_replayed_with_doppel_dlq_after_the_cause_is_fixed(site):
    # Given production's directory is missing (moved away during maintenance)
    production = site.dir / "production" / "shop"
    production.rename(site.dir / "production" / "shop.moved")
    site.start_worker()
    event_id = site.doppel("publish", "env.requested", "--data",
                           '{"env": "late-copy", "production": "shop"}').stdout.strip()
    site.wait(lambda: "late-copy" in site.doppel("dlq", "list", "--function", "snapshot").stdout or
              event_id in site.doppel("dlq", "list", "--function", "snapshot").stdout, what="the parking")
    listing = site.doppel("dlq", "list", "--function", "snapshot").stdout
    assert event_id in listing and "does not exist" in listing

    # When the cause is fixed and the message replayed
    (site.dir / "production" / "shop.moved").rename(production)
    site.doppel("dlq", "replay", event_id)

    # Then the chain completes, and nothing is parked any more
    site.wait(lambda: "env.ready" in [e["type"] for e in site.events()], what="env.ready after the replay")
    assert event_id not in site.doppel("dlq", "list", "--function", "snapshot").stdout


def test_twenty_requests_at_once_on_two_workers_all_reach_ready_with_distinct_credentials(site):
    site.start_worker()
    site.start_worker()
    names = [f"load-{n:02d}" for n in range(20)]
    for name in names:
        site.doppel("env", "create", name, "--from", "shop", "--no-wait")
    site.wait(lambda: sum(e["type"] == "env.ready" for e in site.events()) == 20, timeout=240,
              what="20 environments")

    listing = site.doppel("env", "list").stdout
    assert all(f"{name} " in listing for name in names) and listing.count(" ready ") == 20
    passwords = set()
    for name in names:
        root = site.dir / "state" / "local" / "envs" / name / "root"
        dotenv = dict(l.split("=", 1) for l in (root / ".env").read_text().splitlines() if "=" in l)
        passwords.add(dotenv["DB_PASSWORD"].split()[0])
    assert len(passwords) == 20


def test_poison_messages_are_parked_once_with_their_reason_and_never_come_back(site, amqp_url):
    # Given a worker serving every function
    site.start_worker()
    log = site.dir / "worker-0.log"
    poison = {
        "deep": b"[" * 100_000,  # deeper than the JSON parser can go
        "digits": b"9" * 5000,   # an integer longer than Python converts
        "time": json.dumps({"specversion": "1.0", "id": "time-5", "source": "fuzz", "type": "env.requested",
                            "time": 5, "data": {"env": "poison", "production": "shop"}}).encode(),
    }

    # When they are published with raw pika: to the exchange, and straight into a function's queue
    raw_publish(amqp_url, "doppel.events", "env.requested", poison["deep"], message_id="poison-deep")
    raw_publish(amqp_url, "", "doppel.fn.snapshot", poison["digits"], message_id="poison-digits")
    raw_publish(amqp_url, "doppel.events", "env.requested", poison["time"], message_id="poison-time",
                content_type="application/cloudevents+json")

    # Then each is parked by snapshot within seconds, with a reason a person can read
    def parked():
        listing = site.doppel("dlq", "list", "--function", "snapshot").stdout
        return {line.split()[0]: line for line in listing.splitlines() if line.startswith("poison-")}
    site.wait(lambda: len(parked()) == 3, timeout=20, what="three poison messages parked")
    reasons = parked()
    assert all(" invalid " in line for line in reasons.values())
    assert "RecursionError" in reasons["poison-deep"] or "nest" in reasons["poison-deep"]
    assert "digit" in reasons["poison-digits"] or "integer" in reasons["poison-digits"]
    assert "time" in reasons["poison-time"]

    # And a valid event published after them is handled, while the poison ones were read once each, no more
    sentinel = site.doppel("publish", "env.requested", "--data",
                           '{"env": "after-poison", "production": "shop"}').stdout.strip()
    site.wait(lambda: "env.ready" in [e["type"] for e in site.events(sentinel)], what="the sentinel's chain")
    text = log.read_text()
    for message_id in ("poison-deep", "poison-digits", "poison-time"):
        parkings = [line for line in text.splitlines() if f"snapshot: parked {message_id} " in line]
        assert len(parkings) == 1, f"{message_id} was read {len(parkings)} times"
    assert "handler for doppel.fn.snapshot raised" not in text and "putting the unsettled back" not in text


def test_thirty_requests_through_two_kill_9s_and_a_broker_restart_each_end_once_and_expire_once(tmp_path, amqp_url):
    """Finding 3 of issue 10: a killed worker's messages come back to keys it still holds and wait in the delay
    queues; the broker restarts meanwhile. None may be lost, none run twice, nothing left half-made."""
    from bus import topology
    from bus.ledger import Ledger
    from bus.rabbitmq import RabbitBroker
    from core.broker import event_message
    from core.db import make_engine
    from core.registry import DELETED, FAILED, READY, Registry
    from doppel import migrations
    from doppel.cli.common import build_event

    site = Site(tmp_path, amqp_url, bus={"lease": "8s", "retry": {"attempts": 3, "first_delay": "1s"},
                                         "stuck_after": "1h"},  # the stuck sweep must not be what ends them
                rows=20_000)  # a production that takes a moment to copy, so the kills find work under way
    engine = make_engine(site.env["DOPPEL_DB_URL"])
    migrations.upgrade(engine)  # as a Doppel process makes it, so the workers started on it find it current
    registry, ledger = Registry(engine), Ledger(engine)
    broker = None
    try:
        # Given thirty requests, taken up by one worker
        site.start_worker()
        broker = RabbitBroker(amqp_url)
        names = [f"chaos-{n:02d}" for n in range(30)]
        requests = {name: build_event("env.requested", {"env": name, "production": "shop"}) for name in names}
        broker.publish([event_message(event) for event in requests.values()])

        def states():
            return [env.state for env in registry.all(include_ended=True)]

        def count(*wanted):
            return sum(state in wanted for state in states())

        def running_claims():
            return sum(entry.status == "running" for entry in ledger.entries())

        # When that worker is killed while it holds claims, and a second worker finds them held and defers their
        # messages through the delay queues, where the broker's restart finds them
        site.wait(lambda: running_claims() >= 5, timeout=30, what="the worker to hold claims")
        site.kill_worker(0)
        site.start_worker()
        delay_queues = [topology.delay_queue(f, 1) for f in ("snapshot", "clone", "configure")]
        site.wait(lambda: sum(broker.depth(queue) for queue in delay_queues) > 0, timeout=30,
                  what="messages deferred by the second worker")
        with node_stopped():
            pass
        site.start_worker()
        # ... and, half-way, one of the two is killed too
        site.wait(lambda: count(READY, FAILED) >= 12, timeout=60, what="twelve environments ended")
        site.kill_worker(1)
        site.start_worker()

        # Then every request is registered once and ends ready or failed; none is stuck half-way
        site.wait(lambda: len(states()) == 30 and count(READY, FAILED) == 30, timeout=90,
                  what="all 30 to end", detail=lambda: sorted(states()))
        envs = {env.name: env for env in registry.all(include_ended=True)}
        assert sorted(envs) == names and {env.request_id for env in envs.values()} == {
            f"{e.source}/{e.id}" for e in requests.values()}
        ready = sorted(name for name, env in envs.items() if env.state == READY)
        failed = {name: env.reason for name, env in envs.items() if env.state == FAILED}
        # ... each ended once: one env.ready or one env.failed, never both, never two
        expected = sorted([("env.ready", n) for n in ready] + [("env.failed", n) for n in failed])
        ends = lambda: sorted((e["type"], e["data"]["env"]) for e in site.events()  # noqa: E731
                              if e["type"] in ("env.ready", "env.failed"))
        site.wait(lambda: ends() == expected, timeout=30, what="each end in the audit trail", detail=ends)
        straight = ["requested", "snapshotting", "cloning", "configuring", "ready"]
        for env in envs.values():  # each state entered once, on the way to ready or straight to failed
            path = [t.to_state for t in registry.transitions(env)]
            assert path == straight or (path[-1] == "failed" and path[:-1] == straight[:len(path) - 1]), path
        # ... and on disk: one environment for each ready one, nothing half-made, nothing left of the failed
        state = site.dir / "state" / "local"
        assert sorted(p.name for p in (state / "envs").iterdir()) == ready
        assert not [p for p in (state / "snapshots").iterdir() if p.name.endswith(".partial")]
        for name in ready:
            assert (state / "envs" / name / "configure.json").exists()
        records = json.loads((state / "dns.json").read_text())["records"]
        assert sorted(records) == [f"{name}.localhost" for name in ready]

        # When each ready environment expires
        broker.publish([event_message(build_event("env.expired", {"env": name, "reason": "ttl"}))
                        for name in ready])

        # Then each is backed up exactly once, then deleted
        site.wait(lambda: count(DELETED) == len(ready), timeout=60, what="the ready environments to be deleted")
        assert list((state / "envs").iterdir()) == [] and list((state / "snapshots").iterdir()) == []
        backups = [e["data"] for e in site.events() if e["type"] == "backup.done"]
        assert sorted(b["env"] for b in backups) == ready
        stored = [p for p in (state / "objects").rglob("*") if p.is_file() and ".incoming" not in p.parts]
        for name in ready:
            assert len({p.parent for p in stored if name in p.parts}) == 1, f"{name} backed up more than once"
    finally:
        if broker is not None:
            broker.close()
        site.stop()
