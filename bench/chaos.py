"""Chaos on a 3-node RabbitMQ cluster: environment chains through kill -9s and broker node losses, and what was lost.

    python bench/chaos.py [--chains 300] [--kills 10] [--restarts 3] [--node-down 60] [--results bench/RESULTS.md]

Brings up (or reuses) the cluster of tests/services/rabbitmq-cluster.sh, makes a vhost of its own there and a
PostgreSQL state database of its own (tests/services/postgresql.sh; made by `doppel.migrations.upgrade`, as the
roles require), and starts 2 `doppel worker` processes and `doppel scheduler` on the three nodes' URLs. A stream
of environment chains follows: each `env.requested` with a TTL of a few seconds, so the scheduler expires it
once ready (backup, then teardown), with poison messages mixed in (unparsable JSON, an integer too long to
convert, a CloudEvent with a bad time; to the exchange and straight into a function's queue). While it runs:
`kill -9` of a random worker every few seconds (then started again), restarts of broker nodes (the whole Erlang
node stopped, then started), and one node stopped for `--node-down` seconds.

At the end it prints, from the broker, the state database and the local driver's resources: chains started and
ended (deleted or failed), events published (recorded once each by the audit function) and handled (ledger
claims done or failed), duplicate side effects (a second snapshot.done, stack.ready or backup.done for one
request, a backup stored twice, a state entered twice), messages lost (a published event that a function
subscribed to it never handled, or a message still in a queue), and the poison messages parked with their
reason. The short variant is tests/integration/test_chaos_cluster.py.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.chain_site import Site, raw_publish  # noqa: E402

CLUSTER_SCRIPT = ROOT / "tests/services/rabbitmq-cluster.sh"
NODES = ("rabbit-c1@localhost", "rabbit-c2@localhost", "rabbit-c3@localhost")
PORTS = (5681, 5682, 5683)
POISON = {  # what a client that is not Doppel might send
    "deep": (b"[" * 100_000, "doppel.events", "env.requested", {}),
    "digits": (b"9" * 5000, "", "doppel.fn.snapshot", {}),
    "time": (None, "doppel.events", "env.requested", {"content_type": "application/cloudevents+json"}),
}


@dataclass
class Plan:
    chains: int = 300
    poison_every: int = 10  # one poison message after every this many chains
    kills: int = 10
    kill_every_s: float = 4.0
    restarts: int = 3
    node_down_s: float | None = 60.0  # None: down until `node_down_chains` more chains ended without it
    node_down_chains: int = 3
    feed_every_s: float = 1.0
    ttl_s: int = 5
    rows: int = 200
    end_timeout_s: float = 1800.0


@dataclass
class Run:
    plan: Plan
    site: Site
    db_url: str
    vhost: str
    requests: dict = field(default_factory=dict)  # env name -> request event
    poison: dict = field(default_factory=dict)  # message id -> (exchange, routing key)
    faults: list = field(default_factory=list)
    fed: threading.Event = field(default_factory=threading.Event)
    node_stopped: threading.Event = field(default_factory=threading.Event)  # the last chains wait for it
    feed_error: list = field(default_factory=list)
    engine: object = None  # the state database, and the registry and ledger on it
    registry: object = None
    ledger: object = None


# -- the cluster ------------------------------------------------------------------

def rabbitmqctl(node: str, *args: str, check: bool = True) -> str:
    return subprocess.run(["rabbitmqctl", "-q", "-n", node, *args], capture_output=True, text=True,
                          check=check).stdout


def start_cluster() -> None:
    """Start the cluster, or any node of it that is down (the script reuses what runs)."""
    subprocess.run(["bash", str(CLUSTER_SCRIPT)], check=True, stdout=subprocess.DEVNULL)


def cluster_urls(vhost: str) -> str:
    return ",".join(f"amqp://guest:guest@127.0.0.1:{port}/{quote(vhost, safe='')}?heartbeat=10" for port in PORTS)


def make_vhost() -> str:
    vhost = f"doppel-chaos-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rabbitmqctl(NODES[0], "add_vhost", vhost)
    rabbitmqctl(NODES[0], "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


def delete_vhost(vhost: str) -> None:
    """Delete the run's vhost through the first node that manages to (one may be busy electing leaders)."""
    for node in NODES:
        deleted = subprocess.run(["rabbitmqctl", "-q", "-n", node, "delete_vhost", vhost], capture_output=True)
        if deleted.returncode == 0:
            return
    print(f"bench/chaos.py: could not delete vhost {vhost}; rabbitmqctl -n {NODES[0]} delete_vhost {vhost}",
          file=sys.stderr)


def stop_node(node: str, timeout: float = 120) -> None:
    """Stop the whole Erlang node. `rabbitmqctl stop` may lose sight of a node as it goes down and exit 69 although
    it stopped: what counts is that the node no longer answers a ping."""
    rabbitmqctl(node, "stop", check=False)
    deadline = time.monotonic() + timeout
    while subprocess.run(["rabbitmqctl", "-q", "-n", node, "ping"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{node} still answers {timeout:g} s after rabbitmqctl stop")
        time.sleep(0.5)


def queue_counts(vhost: str) -> dict[str, int]:
    """Messages (ready and unacked) per queue of the vhost, as a running node of the cluster counts them."""
    for node in NODES:
        listed = rabbitmqctl(node, "list_queues", "-p", vhost, "--no-table-headers", "name", "messages", check=False)
        if listed.strip():
            return {name: int(count) for name, count in (line.split() for line in listed.splitlines())}
    return {}


def replicas(vhost: str) -> dict[str, int]:
    """Members of each quorum queue of the vhost."""
    listed = rabbitmqctl(NODES[0], "list_queues", "-p", vhost, "--formatter", "json", "name", "members", check=False)
    return {q["name"]: len(q["members"]) for q in json.loads(listed or "[]") if isinstance(q.get("members"), list)}


# -- the state --------------------------------------------------------------------

def make_state_db() -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database on the test server, made to the current schema; its URL and its dropper."""
    from core.db import make_engine
    from doppel import migrations
    from tests.support.state_db import start_postgresql
    server = start_postgresql()
    name = server.create()
    url = server.url(name)
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url, lambda: server.drop(name)


# -- the run ----------------------------------------------------------------------

def feed(run: Run, say: Callable[[str], None]) -> None:
    """Publish the chains' requests, a poison message after every `poison_every`, paced; each request is
    published again until a node confirms it (same id: the worker takes it once)."""
    from bus.rabbitmq import RabbitBroker
    from core.broker import PublishError, event_message
    from doppel.cli.common import build_event
    urls = run.site.env["DOPPEL_AMQP_URL"]
    broker = RabbitBroker(urls, connect_timeout=60)
    kinds = list(POISON)
    try:
        held = min(run.plan.node_down_chains, run.plan.chains) if run.plan.node_down_s is None else 0
        for n in range(run.plan.chains):
            if n == run.plan.chains - held:  # these are requested while a node is down
                run.node_stopped.wait(run.plan.end_timeout_s)
            name = f"chaos-{n:04d}"
            event = build_event("env.requested", {"env": name, "production": "shop", "ttl_seconds": run.plan.ttl_s})
            run.requests[name] = event
            _until_sent(name, say, PublishError, broker.publish, [event_message(event)])
            if run.plan.poison_every and (n + 1) % run.plan.poison_every == 0:
                kind = kinds[len(run.poison) % len(kinds)]
                body, exchange, key, properties = POISON[kind]
                message_id = f"poison-{kind}-{len(run.poison)}"
                if body is None:
                    body = json.dumps({"specversion": "1.0", "id": message_id, "source": "chaos",
                                       "type": "env.requested", "time": 5,
                                       "data": {"env": "poison", "production": "shop"}}).encode()
                _until_sent(message_id, say, Exception, raw_publish, urls, exchange, key, body,
                            message_id=message_id, **properties)
                run.poison[message_id] = (exchange, key)
            time.sleep(run.plan.feed_every_s)
    except Exception as exc:  # noqa: BLE001 - reported by the run, which must not hang on a dead feeder
        run.feed_error.append(exc)
    finally:
        broker.close()
        run.fed.set()


def _until_sent(what: str, say: Callable[[str], None], errors, send: Callable, *args, **kwargs) -> None:
    attempts = 20
    for attempt in range(1, attempts + 1):
        try:
            send(*args, **kwargs)
            return
        except errors as exc:  # noqa: BLE001 - a node going away under a publish; another takes it
            if attempt == attempts:
                raise
            say(f"publishing {what} failed ({type(exc).__name__}); again")
            time.sleep(1)


def ended(run: Run, names=None) -> int:
    """Chains (of `names`, default all requested) deleted or failed."""
    from core.registry import DELETED, FAILED
    names = run.requests if names is None else set(names)
    return sum(env.state in (DELETED, FAILED) for env in run.registry.all(include_ended=True) if env.name in names)


def kill_a_worker(run: Run, say) -> None:
    index = random.randrange(2)
    run.site.kill_worker(index)
    run.site.start_worker(index)
    run.faults.append(f"kill -9 worker {index}")
    say(f"fault {len(run.faults)}: kill -9 worker {index}, started again ({ended(run)} chains ended)")


def restart_node(run: Run, node: str, say) -> None:
    started = time.monotonic()
    stop_node(node)
    start_cluster()
    run.faults.append(f"restart {node}")
    say(f"fault {len(run.faults)}: {node} stopped and started again in {time.monotonic() - started:.0f} s")


def node_down(run: Run, node: str, kills: list, say) -> None:
    """Stop `node`; the last `node_down_chains` chains are requested now; kill workers meanwhile. Start it again
    after node_down_s, or (None) once those chains all ended without it."""
    stop_node(node)
    before = ended(run)
    started = time.monotonic()
    run.node_stopped.set()
    held = [f"chaos-{n:04d}" for n in range(max(0, run.plan.chains - run.plan.node_down_chains), run.plan.chains)]
    say(f"fault: {node} stopped ({before} chains ended, {len(run.requests)} requested)")

    def went_on() -> bool:
        if run.plan.node_down_s is not None:
            return time.monotonic() - started >= run.plan.node_down_s
        return run.fed.is_set() and ended(run, held) == len(held)
    kill_at = started + run.plan.kill_every_s
    while not went_on():
        if kills and time.monotonic() >= kill_at:
            kills.pop()
            kill_a_worker(run, say)
            kill_at = time.monotonic() + run.plan.kill_every_s
        if time.monotonic() - started > run.plan.end_timeout_s:
            raise AssertionError(f"the chains requested while {node} was down did not end")
        time.sleep(0.5)
    after = ended(run)
    start_cluster()
    run.faults.append(f"{node} down {time.monotonic() - started:.0f} s")
    say(f"fault {len(run.faults)}: {node} down for {time.monotonic() - started:.0f} s while {after - before} "
        "chains ended; started again")


def inflict(run: Run, say) -> None:
    """The faults, interleaved: kills every few seconds, node restarts between them, one node down a while."""
    plan = run.plan
    kills = [None] * plan.kills
    restarts = [random.choice(NODES) for _ in range(plan.restarts)]
    down = random.choice(NODES)
    steps: list[str] = []
    nodes = [*restarts]
    nodes.insert(len(nodes) // 2, "down")  # the node down in the middle, while chains are still being requested
    per_gap = max(1, len(kills) // (len(nodes) + 1))
    for node in nodes:
        steps += ["kill"] * min(per_gap, len(kills) - steps.count("kill"))
        steps.append(node)
    steps += ["kill"] * (len(kills) - steps.count("kill"))
    for step in steps:
        if step == "kill":
            if kills:
                kills.pop()
                time.sleep(plan.kill_every_s)
                kill_a_worker(run, say)
        elif step == "down":
            node_down(run, down, kills, say)
        else:
            restart_node(run, step, say)


def figures(run: Run) -> dict:
    """What the broker, the state database and the driver's resources say once every chain ended."""
    import sqlalchemy as sa

    from bus.memory import topic_matches
    from bus.topology import consumed_patterns
    from core.registry import DELETED, FAILED
    from doppel import roles
    envs = {env.name: env for env in run.registry.all(include_ended=True) if env.name in run.requests}
    states = Counter(env.state for env in envs.values())
    from bus.ledger_table import ledger_table
    from core.audit import audit_table
    with run.engine.connect() as conn:
        audited = conn.execute(sa.select(audit_table.c.id, audit_table.c.type, audit_table.c.data)).all()
        claims = conn.execute(sa.select(ledger_table.c.function, ledger_table.c.event_id, ledger_table.c.status)).all()
    handled = {(function, event_id) for function, event_id, status in claims if status in ("done", "failed")}
    by_function = Counter(function for function, _event, status in claims if status in ("done", "failed"))
    served = roles.functions_named(None)
    lost = []
    for event_id, event_type, _data in audited:
        for function in served:
            if any(topic_matches(p, event_type) for p in consumed_patterns(function)) \
                    and (function.NAME, event_id) not in handled:
                lost.append(f"{event_type} {event_id} never handled by {function.NAME}")
    effects = Counter()
    for _id, event_type, data in audited:
        if event_type in ("snapshot.done", "stack.ready", "backup.done", "env.ready", "env.deleted"):
            effects[(event_type, json.loads(data).get("env"))] += 1
    duplicates = [f"{count} x {kind} for {env}" for (kind, env), count in effects.items() if count > 1]
    for env in envs.values():  # each state entered once
        path = [t.to_state for t in run.registry.transitions(env)]
        repeated = [state for state, count in Counter(path).items() if count > 1]
        if repeated:
            duplicates.append(f"{env.name} entered {', '.join(repeated)} more than once")
    state = run.site.dir / "state" / "local"
    stored = [p for p in (state / "objects").rglob("*") if p.is_file() and ".incoming" not in p.parts]
    backups_per_env = Counter()
    for name in envs:
        backups_per_env[name] = len({p.parent for p in stored if name in p.parts})
    duplicates += [f"{name} backed up {count} times" for name, count in backups_per_env.items() if count > 1]
    left = {"stacks": sorted(p.name for p in (state / "envs").iterdir()),
            "snapshots": sorted(p.name for p in (state / "snapshots").iterdir())}
    queued = {name: count for name, count in queue_counts(run.vhost).items()
              if count and not name.endswith(".dead")}
    lost += [f"{count} message(s) still in {name}" for name, count in queued.items()]
    parked = json.loads(run.site.doppel("dlq", "list", "-o", "json").stdout)
    parked_poison = {(row["message_id"], row["function"]): row.get("error") for row in parked
                     if str(row["message_id"]).startswith("poison-")}
    expected = set()
    for message_id, (exchange, key) in run.poison.items():
        if exchange == "":
            expected.add((message_id, key.removeprefix("doppel.fn.")))
        else:
            expected |= {(message_id, f.NAME) for f in served
                         if any(topic_matches(p, key) for p in consumed_patterns(f))}
    unparked = sorted(f"{m} by {f}" for m, f in expected if not parked_poison.get((m, f)))
    other_parked = [row for row in parked if not str(row["message_id"]).startswith("poison-")]
    return {
        "chains started": len(run.requests),
        "chains registered": len(envs),
        "chains ended": states[DELETED] + states[FAILED],
        "deleted after expiry": states[DELETED], "failed": states[FAILED],
        "not ended": sorted(f"{env.name} {env.state}" for env in envs.values() if env.state not in (DELETED, FAILED)),
        "events published (audited once each)": len(audited),
        "events handled (claims done or failed)": sum(by_function.values()),
        "handled by function": dict(sorted(by_function.items())),
        "duplicate side effects": duplicates,
        "messages lost": lost,
        "resources left": left["stacks"] + left["snapshots"],
        "poison messages": len(run.poison),
        "poison parkings expected": len(expected),
        "poison parked with a reason": len(expected) - len(unparked),
        "poison not parked": unparked,
        "poison reasons": sorted({(f, (e or "")[:80]) for (_m, f), e in parked_poison.items()}),
        "other messages parked": [f"{r['message_id']} by {r['function']}: {(r.get('error') or '')[:100]}"
                                  for r in other_parked],
        "quorum queue replicas": sorted(set(replicas(run.vhost).values())),
        "faults": run.faults,
    }


def chaos(plan: Plan, workdir: Path, db_url: str, say: Callable[[str], None] = print) -> dict:
    """Run the plan on the cluster (started if needed) with state in `db_url`; the figures."""
    from bus.ledger import Ledger
    from core.db import make_engine
    from core.registry import Registry
    start_cluster()
    vhost = make_vhost()
    site = Site(workdir, cluster_urls(vhost), bus={"lease": "8s", "retry": {"attempts": 3, "first_delay": "1s"},
                                                    "stuck_after": "1h"}, rows=plan.rows, db_url=db_url)
    site.rabbitmqctl_node = ["-n", NODES[0]]
    run = Run(plan, site, db_url, vhost)
    run.engine = make_engine(db_url)
    run.registry, run.ledger = Registry(run.engine), Ledger(run.engine)
    started = time.monotonic()
    try:
        site.start_worker()
        site.start_worker()
        site.start_scheduler()
        feeder = threading.Thread(target=feed, args=(run, say), name="chaos-feed", daemon=True)
        feeder.start()
        inflict(run, say)
        say(f"faults done after {time.monotonic() - started:.0f} s; waiting for every chain to end")
        run.fed.wait(plan.end_timeout_s)
        if run.feed_error:
            raise run.feed_error[0]
        deadline = time.monotonic() + plan.end_timeout_s
        last = -1
        while ended(run) < plan.chains and time.monotonic() < deadline:
            if ended(run) != last:
                last = ended(run)
                say(f"{last}/{plan.chains} chains ended ({time.monotonic() - started:.0f} s)")
            time.sleep(2)
        # the last events (notify, prune) may still be in their queues: let them drain
        drain_deadline = time.monotonic() + 120
        while time.monotonic() < drain_deadline and any(
                count for name, count in queue_counts(vhost).items() if not name.endswith(".dead")):
            time.sleep(1)
        result = figures(run)
        result["seconds"] = round(time.monotonic() - started)
        return result
    finally:
        site.stop()
        run.engine.dispose()
        start_cluster()  # a run that failed with a node down must not leave it down
        delete_vhost(vhost)


def print_figures(result: dict) -> None:
    for key, value in result.items():
        if isinstance(value, list) and len(value) > 12:
            value = value[:12] + [f"... {len(value) - 12} more"]
        print(f"{key}: {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--node-down", type=float, default=60.0, help="seconds one node stays stopped")
    parser.add_argument("--poison-every", type=int, default=10)
    parser.add_argument("--feed-every", type=float, default=1.0,
                        help="seconds between two requests (chains keep coming while the faults go on)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="where the site lives (default a temporary one)")
    parser.add_argument("--results", type=Path, default=None, help="append the figures to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/chaos.py: run as root (it starts and stops RabbitMQ nodes)", file=sys.stderr)
        return 2
    random.seed(args.seed)
    plan = Plan(chains=args.chains, kills=args.kills, restarts=args.restarts, node_down_s=args.node_down,
                poison_every=args.poison_every, feed_every_s=args.feed_every)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="doppel-chaos-"))
    db_url, drop = make_state_db()
    try:
        result = chaos(plan, workdir, db_url, say=lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}",
                                                                       flush=True))
    finally:
        drop()
    print_figures(result)
    ok = (result["chains ended"] == result["chains started"] and not result["duplicate side effects"]
          and not result["messages lost"] and not result["poison not parked"])
    if args.results:
        with args.results.open("a") as out:
            out.write(f"\n<!-- chaos run on {platform.node()} -->\n```\n")
            out.write("\n".join(f"{k}: {v}" for k, v in result.items()) + "\n```\n")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
