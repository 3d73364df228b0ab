"""Each role as its own process on a real RabbitMQ, each on its own metrics port, read with curl after a chain.

`doppel worker`, `doppel scheduler` and `doppel gateway`, started as the Procfile
starts them, share one database and one vhost. An environment is requested through
the gateway, and the scheduler fires a backup of production every second; once both
are done, each port shows the families of what its role does.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clouds.local.sample import make_sample_production
from core.db import make_engine
from core.registry import Registry
from tests.flow.test_metrics import free_port, sample, scrape
from tests.support.gateway import GATEWAY, SECRETS, call
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[2]


def answers(port: int) -> bool:
    try:
        scrape(port)
    except subprocess.CalledProcessError:
        return False
    return True


def listening(port: int) -> bool:
    try:
        return call(f"http://127.0.0.1:{port}", "GET", "/health").status == 200
    except OSError:
        return False


def test_each_role_serves_its_families_on_its_own_port_after_a_chain(tmp_path, amqp_url):
    # Given the worker, the scheduler and the gateway as processes, each with a metrics port
    ports = {role: free_port() for role in ("worker", "scheduler", "gateway")}
    gateway_port = free_port()
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"),
        "productions": {"shop": make_sample_production(tmp_path / "production" / "shop")},
        "dr": {"shop": {"target": {"env": "shop-dr"}}},
        "schedules": [{"id": "nightly", "every": "1s", "type": "backup.due", "data": {"env": "shop"}}],
        "gateway": {**GATEWAY, "host": "127.0.0.1", "port": gateway_port},
        "metrics": {"ports": ports}}))
    database = f"sqlite:///{tmp_path / 'doppel.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOPPEL_", "SENTRY_"))}
    env.update(SECRETS, PYTHONPATH=str(ROOT), DOPPEL_CONFIG=str(config), DOPPEL_AMQP_URL=amqp_url,
               DOPPEL_DB_URL=database)
    processes = {role: subprocess.Popen([sys.executable, "-m", "doppel", role], env=env, cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{role}.log", "w"))
                 for role in ports}
    logs = lambda: "\n".join(f"--- {r}\n{(tmp_path / f'{r}.log').read_text()[-2000:]}" for r in ports)
    try:
        for role, port in ports.items():
            wait_for(lambda port=port: answers(port), 60, f"the {role}'s metrics port", explain=logs)
        # the gateway serves its metrics before it has declared the topology and listens for events
        wait_for(lambda: listening(gateway_port), 60, "the gateway listening", explain=logs)

        # When an environment is requested through the gateway, and the scheduler's backup is made
        event = {"specversion": "1.0", "id": "req-metrics-1", "source": "https://ci.example/jobs/1",
                 "type": "env.requested", "data": {"env": "perf", "production": "shop"}}
        answer = call(f"http://127.0.0.1:{gateway_port}", "POST", "/events", json.dumps(event).encode(),
                      {"Content-Type": "application/cloudevents+json",
                       "Authorization": f"Bearer {SECRETS['DOPPEL_TEST_GATEWAY_TOKEN']}"})
        assert answer.status == 202, answer.body
        registry = Registry(make_engine(database))
        wait_for(lambda: (registry.living("perf") or None) and registry.living("perf").state == "ready", 90,
                 "perf to be ready", explain=logs)
        wait_for(lambda: sample(scrape(ports["worker"]), "doppel_events_handled_total", function="backup"), 90,
                 "a backup made", explain=logs)
        worker, scheduler, gateway = (scrape(ports[role]) for role in ("worker", "scheduler", "gateway"))
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # Then the worker's port shows its events, handlers, queues and backups
    for function in ("snapshot", "clone", "configure"):
        assert sample(worker, "doppel_events_consumed_total", function=function) == 1, function
        assert sample(worker, "doppel_events_published_total", function=function) == 1, function
        assert sample(worker, "doppel_handler_duration_seconds_count", function=function) == 1, function
    assert sample(worker, "doppel_queue_depth", function="snapshot") == 0
    assert sample(worker, "doppel_dead_letter_depth", function="snapshot") == 0
    assert sample(worker, "doppel_backup_bytes_total", production="shop") > 0
    assert sample(worker, "doppel_backup_duration_seconds_count", production="shop") >= 1
    # the scheduler's: its fires, the lease it holds, environments, DR state, and the RPO gauge
    assert sample(scheduler, "doppel_scheduler_fires_total", type="backup.due") >= 1
    assert sum(v for (name, _), v in scheduler.items() if name == "doppel_scheduler_lease_held") == 1
    assert sum(v for (name, _), v in scheduler.items() if name == "doppel_scheduler_lease_holder") == 1
    assert sample(scheduler, "doppel_environments", state="ready") == 1
    assert sample(scheduler, "doppel_dr_state", production="shop", state="normal") == 1
    assert sample(scheduler, "doppel_rpo_seconds", production="shop") < 3600
    # the gateway's: what it published, and the queues it publishes to
    assert sample(gateway, "doppel_gateway_events_published_total", route="events") == 1
    assert sample(gateway, "doppel_queue_depth", function="snapshot") is not None
