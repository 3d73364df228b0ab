"""Every role's metrics, read with a real HTTP client after a chain ran; the RPO gauge on a clock the test moves.

The worker, scheduler and gateway run in one process here (as `doppel run` does, on
the worker's port), on the in-memory bus; tests/integration/test_metrics_rabbitmq.py
runs the worker as its own process on RabbitMQ.
"""
import socket
import subprocess
import threading
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import functions
from doppel.metrics import StateCollector, expose
from scheduler.lease import LeaseTiming
from scheduler.service import SchedulerService
from tests.flow.conftest import Shop
from tests.support.waiting import wait_for

FAST = LeaseTiming(ttl=2.0, renew_every=0.5, poll_every=0.25, safety=0.5, handover_window=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict:
    """curl's view of the port: {(name, labels as a sorted tuple): value}."""
    text = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True,
                          check=True, timeout=30).stdout
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_after_a_chain_the_metrics_port_shows_events_handlers_queues_fires_lease_backups_and_states(tmp_path,
                                                                                                    monkeypatch):
    # Given a Doppel with a metrics port, a backup every second, and a DR policy for its production
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    port = free_port()
    shop = Shop(tmp_path, metrics={"ports": {"worker": port}},
                schedules=[{"id": "nightly", "every": "1s", "type": "backup.due", "data": {"env": "shop"}}],
                dr={"shop": {"target": {"env": "shop-dr"}}})
    app = shop.app
    service = SchedulerService.from_app(app, timing=FAST, tick=0.25, holder="replica-a")
    stop = threading.Event()
    loop = threading.Thread(target=service.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert expose(app, "worker", functions=functions.FUNCTIONS, service=service) == port
        # When an environment chain runs, and the scheduler fires a backup that the worker makes
        shop.publish("env.requested", env="perf", production="shop")
        wait_for(lambda: app.metrics.value("doppel_scheduler_fires_total", type="backup.due") >= 1, 30,
                 "the scheduler's first backup.due")
        stop.set()
        service.stop_soon()
        loop.join(timeout=10)
        app.broker.run_until_idle(timeout=60)
        got = scrape(port)
    finally:
        stop.set()
        service.stop_soon()
        loop.join(timeout=10)
        app.close()

    # Then curl sees each family, with the chain's counts
    for function in ("snapshot", "clone", "configure", "backup"):
        assert sample(got, "doppel_events_consumed_total", function=function) >= 1, function
        assert sample(got, "doppel_events_handled_total", function=function) >= 1, function
        assert sample(got, "doppel_handler_duration_seconds_count", function=function) >= 1, function
    assert sample(got, "doppel_events_published_total", function="snapshot") == 1  # snapshot.done
    assert sample(got, "doppel_events_published_total", function="configure") == 1  # env.ready
    assert sample(got, "doppel_queue_depth", function="clone") == 0
    assert sample(got, "doppel_dead_letter_depth", function="clone") == 0
    assert sample(got, "doppel_scheduler_fires_total", type="backup.due") >= 1
    assert sample(got, "doppel_scheduler_lease_held", replica="replica-a") == 0  # released when it stopped
    assert sample(got, "doppel_environments", state="ready") == 1
    assert sample(got, "doppel_environments", state="failed") == 0
    assert sample(got, "doppel_dr_state", production="shop", state="normal") == 1
    assert sample(got, "doppel_dr_state", production="shop", state="failed_over") == 0
    assert sample(got, "doppel_backup_bytes_total", production="shop") > 0
    assert sample(got, "doppel_backup_duration_seconds_count", production="shop") >= 1
    assert sample(got, "doppel_rpo_seconds", production="shop") < 60
    assert sample(got, "doppel_rpo_objective_seconds", production="shop") == 26 * 3600
    assert sample(got, "doppel_events_retried_total", function="clone") is None  # nothing failed


def test_a_parked_message_is_counted_by_function_and_kind(shop):
    # When a message that fails its schema reaches snapshot
    from core.broker import event_message
    from schemas.envelope import Event
    shop.app.broker.publish([event_message(Event(type="env.requested", source="test",
                                                 data={"env": "Not A Name!", "production": "shop"}))])
    shop.app.broker.run_until_idle(timeout=30)
    # Then it is parked as invalid, and counted so
    assert shop.app.metrics.value("doppel_events_parked_total", function="snapshot", kind="invalid") == 1
    assert shop.app.metrics.value("doppel_events_handled_total", function="snapshot") == 0


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_rpo_gauge_rises_as_the_newest_backup_ages_and_drops_after_a_backup(shop):
    # Given a production backed up at t0, and the RPO gauge read on a clock the test moves
    app = shop.app
    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
    clock = Clock(t0)
    registry = CollectorRegistry()
    registry.register(StateCollector(app.config, app.registry, app.dr_states, app.catalogue, clock=clock))
    rpo = lambda: registry.get_sample_value("doppel_rpo_seconds", {"production": "shop"})
    assert rpo() == float("inf")  # no backup yet: nothing bounds the loss
    app.backups.back_up("shop", app.cloud.backup_source("shop"), reason="scheduled", now=t0)
    assert rpo() == 0

    # When time passes, the gauge rises with it
    clock.now = t0 + timedelta(hours=1)
    assert rpo() == 3600
    clock.now = t0 + timedelta(hours=27)
    assert rpo() == 27 * 3600 > registry.get_sample_value("doppel_rpo_objective_seconds", {"production": "shop"})

    # Then a new backup brings it down to that backup's age
    app.backups.back_up("shop", app.cloud.backup_source("shop"), reason="scheduled",
                        now=t0 + timedelta(hours=26, minutes=50))
    assert rpo() == 600
    assert registry.get_sample_value("doppel_backup_newest_timestamp_seconds", {"production": "shop"}) == \
        (t0 + timedelta(hours=26, minutes=50)).timestamp()


def test_a_metrics_port_already_taken_stops_the_role_with_the_key_to_change(shop):
    import pytest

    from core.errors import ConfigError
    from doppel.config import parse_config
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        shop.app.config = parse_config({**shop.app.config.raw, "metrics": {"ports": {"scheduler": port}}}, None)
        with pytest.raises(ConfigError, match=rf"127.0.0.1:{port} .*metrics.ports.scheduler"):
            expose(shop.app, "scheduler")
    assert expose(shop.app, "worker") is None  # no port set for it: nothing served
