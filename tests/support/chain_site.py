"""A site for chains run through `doppel worker` processes on a real RabbitMQ: used by the chain tests
(tests/integration/test_chain_rabbitmq.py), the cluster chaos test and bench/chaos.py."""
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from clouds.local.sample import make_sample_production
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


class Site:
    """A sample production, a config file, a shared state database (SQLite unless `db_url`) and a vhost of its
    own (`amqp_url`: one node's URL, or a cluster's, comma-separated)."""

    def __init__(self, tmp_path: Path, amqp_url: str, bus: dict | None = None, rows: int = 50,
                 db_url: str | None = None):
        self.dir = tmp_path
        entry = make_sample_production(tmp_path / "production" / "shop", rows=rows)
        self.config = tmp_path / "doppel.yaml"
        self.config.write_text(yaml.safe_dump({
            "state_dir": "state", "productions": {"shop": entry},
            "bus": bus or {"lease": "5s", "retry": {"attempts": 2, "first_delay": "200ms"}}}))
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")},
                    "DOPPEL_AMQP_URL": amqp_url, "DOPPEL_DB_URL": db_url or f"sqlite:///{tmp_path / 'doppel.db'}",
                    "DOPPEL_CONFIG": str(self.config), "PYTHONPATH": str(ROOT)}
        self.workers = []
        self.rabbitmqctl_node: list[str] = []  # ["-n", NODE] to ask a cluster's node rather than the local one

    def doppel(self, *args, check=True):
        run = subprocess.run([sys.executable, "-m", "doppel", *args], cwd=self.dir, env=self.env,
                             capture_output=True, text=True, timeout=300)
        if check and run.returncode:
            raise AssertionError(f"doppel {' '.join(args)}: {run.stderr}")
        return run

    def start_worker(self, index: int | None = None):
        """A `doppel worker` process; `index` replaces that one (killed), else it is added."""
        index = len(self.workers) if index is None else index
        log = open(self.dir / f"worker-{index}.log", "a")
        worker = subprocess.Popen([sys.executable, "-m", "doppel", "worker"], cwd=self.dir, env=self.env,
                                  stdout=log, stderr=log)
        if index == len(self.workers):
            self.workers.append(worker)
        else:
            self.workers[index] = worker
        for attempt in (1, 2, 3):  # a loaded host can take longer than the CLI's 30 s to finish a handshake
            run = self.doppel("topology", "--declare", check=False)
            if run.returncode == 0:
                return
            if "not reachable within" not in run.stderr or attempt == 3:
                raise AssertionError(f"doppel topology --declare: {run.stderr}")

    def start_scheduler(self):
        log = open(self.dir / "scheduler.log", "a")
        self.workers.append(subprocess.Popen([sys.executable, "-m", "doppel", "scheduler"], cwd=self.dir,
                                             env=self.env, stdout=log, stderr=log))

    def kill_worker(self, index):
        """kill -9: no clean stop, its deliveries unacked, its claims left running."""
        self.workers[index].kill()
        self.workers[index].wait()

    def events(self, correlation=None) -> list[dict]:
        args = ["events", "-o", "json", "--limit", "100000"] + (["--correlation", correlation] if correlation else [])
        return json.loads(self.doppel(*args).stdout)

    def wait(self, condition, timeout=90, what="the chain", detail=lambda: ""):
        try:
            wait_for(condition, timeout, what, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc} {detail()}") from None

    def queue_messages(self, queue: str) -> int:
        """Ready plus unacknowledged messages in `queue`, as RabbitMQ counts them."""
        vhost = unquote(urlsplit(self.env["DOPPEL_AMQP_URL"].split(",")[0]).path[1:])
        listed = subprocess.run(["rabbitmqctl", "-q", *self.rabbitmqctl_node, "list_queues", "-p", vhost,
                                 "--no-table-headers", "name", "messages"],
                                capture_output=True, text=True, check=True).stdout
        return sum(int(count) for name, count in (line.split() for line in listed.splitlines()) if name == queue)

    def stop(self):
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()


def raw_publish(amqp_url, exchange, routing_key, body, **properties):
    """Publish as a client that is not Doppel would: raw pika, no validation (to the first node of a cluster's
    comma-separated URLs that answers)."""
    import pika
    connection = pika.BlockingConnection([pika.URLParameters(url) for url in amqp_url.split(",")])
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(delivery_mode=2, **properties),
                              mandatory=True)
    finally:
        connection.close()
