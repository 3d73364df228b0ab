"""The environment chain through `doppel worker` processes and the `doppel` CLI on a real RabbitMQ."""
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from clouds.local.sample import make_sample_production
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[2]


class Site:
    """A sample production, a config file, a shared SQLite database and a vhost of its own."""

    def __init__(self, tmp_path: Path, amqp_url: str):
        self.dir = tmp_path
        entry = make_sample_production(tmp_path / "production" / "shop")
        self.config = tmp_path / "doppel.yaml"
        self.config.write_text(yaml.safe_dump({
            "state_dir": "state", "productions": {"shop": entry},
            "bus": {"lease": "5s", "retry": {"attempts": 2, "first_delay": "200ms"}}}))
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")},
                    "DOPPEL_AMQP_URL": amqp_url, "DOPPEL_DB_URL": f"sqlite:///{tmp_path / 'doppel.db'}",
                    "DOPPEL_CONFIG": str(self.config), "PYTHONPATH": str(ROOT)}
        self.workers = []

    def doppel(self, *args, check=True):
        run = subprocess.run([sys.executable, "-m", "doppel", *args], cwd=self.dir, env=self.env,
                             capture_output=True, text=True, timeout=300)
        if check and run.returncode:
            raise AssertionError(f"doppel {' '.join(args)}: {run.stderr}")
        return run

    def start_worker(self):
        log = open(self.dir / f"worker-{len(self.workers)}.log", "w")
        self.workers.append(subprocess.Popen([sys.executable, "-m", "doppel", "worker"], cwd=self.dir,
                                             env=self.env, stdout=log, stderr=log))
        self.doppel("topology", "--declare")

    def events(self, correlation=None) -> list[dict]:
        args = ["events", "--json", "--limit", "100000"] + (["--correlation", correlation] if correlation else [])
        return [json.loads(line) for line in self.doppel(*args).stdout.splitlines()]

    def wait(self, condition, timeout=90, what="the chain"):
        wait_for(condition, timeout, what, interval=0.5)

    def queue_messages(self, queue: str) -> int:
        """Ready plus unacknowledged messages in `queue`, as RabbitMQ counts them."""
        vhost = unquote(urlsplit(self.env["DOPPEL_AMQP_URL"]).path[1:])
        listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name",
                                 "messages"], capture_output=True, text=True, check=True).stdout
        return sum(int(count) for name, count in (line.split() for line in listed.splitlines()) if name == queue)

    def stop(self):
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()


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
