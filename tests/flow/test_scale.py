"""A thousand environments in the registry: `doppel env list` prints every one, and the expiry sweep sends each
its env.expired once, on SQLite and on PostgreSQL.

The registry is filled in one INSERT of the rows it writes for a ready environment (through the registry, the
1,000 requests and their moves would cost 10-30 s); every read goes through the code under test. No timings
here: bench/scale.py measures them.
"""
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from sqlalchemy import insert

from bus.memory import MemoryBroker
from core.broker import QueueSpec
from core.db import make_engine
from core.registry import DELETED, EXPIRING, READY, Registry, envs_table
from doppel.cli import main
from doppel.migrations import ensure_current
from scheduler.control import Scheduler
from scheduler.firing import Emitter, Firer, expiry_event
from scheduler.jobs import JobSpec, expiry_job_id
from scheduler.service import SchedulerService
from scheduler.tables import expiries_table
from schemas.envelope import Event
from tests.support.waiting import wait_for

MANY = 1000
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def fill(engine, count: int, *, state: str = READY, expires_at=None, prefix: str = "env") -> list[str]:
    """`count` environments as the registry holds them once the chain made them `state`; their names."""
    names = [f"{prefix}-{n:04d}" for n in range(count)]
    created = NOW - timedelta(hours=2)
    with engine.begin() as conn:
        conn.execute(insert(envs_table), [
            {"name": name, "request_id": f"test/{prefix}/{n}", "production": "shop", "state": state,
             "owner": "scale", "ttl_seconds": 3600, "expires_at": expires_at(n) if expires_at else None,
             "endpoints": json.dumps({"root": f"/srv/{name}"}), "correlation_id": f"corr-{prefix}-{n}",
             "created_at": created, "updated_at": created} for n, name in enumerate(names)])
    return names


@pytest.fixture
def engine(tmp_path, state_db_url):
    """The state database at this code's schema, as a Doppel process makes it; the file the CLI opens on SQLite."""
    engine = make_engine(state_db_url or f"sqlite:///{tmp_path / 'state' / 'doppel.db'}")
    (tmp_path / "state").mkdir(exist_ok=True)
    ensure_current(engine, "the test's database")
    yield engine
    engine.dispose()


class Sweep:
    """The scheduler's expiry safety net on the in-memory bus, at a clock the test sets (`at`)."""

    def __init__(self, engine, now: datetime):
        self.at = now
        self.broker = MemoryBroker()
        self.broker.declare([QueueSpec("seen", "classic", ("env.expired",))])
        self.control = Scheduler(engine, clock=lambda: self.at.timestamp())
        self.firer = Firer(control=self.control, registry=Registry(engine), emitter=Emitter(self.broker, engine),
                           may_fire=lambda: True, clock=lambda: self.at)

    def published(self) -> list[Event]:
        return published(self.broker)


def published(broker) -> list[Event]:
    """The env.expired events published on `broker` since the last look."""
    events = []
    while (delivery := broker.get("seen")) is not None:
        events.append(Event.from_json(delivery.message.body))
        delivery.ack()
    return events


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_the_sweep_sends_each_of_a_thousand_expired_environments_one_env_expired(engine):
    # Given 1,000 ready environments whose TTLs ran out over the last 1,000 seconds (env-0000 a second ago,
    # env-0999 1,000 s ago), and environments the sweep must leave alone: ready but not yet due, already expiring
    expired = fill(engine, MANY, expires_at=lambda n: NOW - timedelta(seconds=n + 1))
    fill(engine, 20, prefix="later", expires_at=lambda n: NOW + timedelta(seconds=n + 1))
    fill(engine, 20, prefix="going", state=EXPIRING, expires_at=lambda n: NOW - timedelta(seconds=n + 1))
    # and pauses: one by hand on env-0500 now, one on every expiry from 2,000 s ago to 990.5 s ago (it holds the
    # TTLs that ran out while it was in force, env-0990 to env-0999, as it holds any fire it covered)
    sweep = Sweep(engine, NOW - timedelta(seconds=2000))
    sweep.control.pause_jobs("type:env.expired", reason="maintenance")
    sweep.at = NOW - timedelta(seconds=990.5)
    sweep.control.resume_jobs("type:env.expired")
    sweep.at = NOW
    sweep.control.pause_jobs([expiry_job_id("env-0500")], reason="kept for a demo")

    # When the sweep runs, and runs again at once
    first = sweep.firer.sweep_expired()
    events = sweep.published()
    again = sweep.firer.sweep_expired()

    # Then every expired one no pause holds got exactly one env.expired, in its own chain, and the second pass
    # sent nothing again
    wanted = set(expired[:990]) - {"env-0500"}
    assert first == len(events) == len(wanted) == 989
    assert sorted(e.data["env"] for e in events) == sorted(wanted)
    assert len({e.id for e in events}) == len(events)
    assert all(e.correlationid == f"corr-env-{int(e.data['env'][4:])}" for e in events)
    assert again == 0 and sweep.published() == []


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_a_date_job_firing_after_the_sweep_sent_its_environment_sends_nothing_again(engine):
    # Given ready environments past their TTL, which the sweep has expired
    names = fill(engine, 3, expires_at=lambda n: NOW - timedelta(seconds=1))
    sweep = Sweep(engine, NOW)
    assert sweep.firer.sweep_expired() == 3
    sent = sweep.published()

    # When their date jobs fire after it (APScheduler's thread, one by one)
    env = Registry(engine).living(names[0])
    sweep.firer.fire(JobSpec.expiry(env.name, env.expires_at.timestamp()), [env.expires_at])

    # Then the env.expired already sent is not sent a second time, and its TTL row is recorded as fired
    assert sweep.published() == []
    assert expiry_event(env, NOW).id in {e.id for e in sent}


def test_a_scheduler_with_hundreds_of_ttls_ending_in_one_second_sends_each_one_env_expired(engine):
    # Given 300 ready environments whose TTLs (their rows, as configure writes them) all end in the same second,
    # two seconds from now
    count = 300
    end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    names = fill(engine, count, expires_at=lambda n: end)
    Scheduler(engine)
    with engine.begin() as conn:
        conn.execute(insert(expiries_table), [{"env": name, "at": end.timestamp(), "requested_at": time.time()}
                                              for name in names])
    broker = MemoryBroker()
    broker.declare([QueueSpec("seen", "classic", ("env.expired",))])
    service = SchedulerService(engine=engine, broker=broker, registry=Registry(engine), schedules=[], tick=0.25)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)

    # When a scheduler runs until every TTL row is recorded as fired: its date jobs and its tick's safety net
    # both see them due, from two threads
    thread.start()
    try:
        wait_for(lambda: not service.control.expiries(), 120, "every TTL row to be fired",
                 explain=lambda: f"{len(service.control.expiries())} still pending")
    finally:
        stop.set()
        service.stop_soon()
        thread.join(timeout=30)

    # Then each environment got exactly one env.expired: none lost, none sent twice
    events = published(broker)
    assert sorted(e.data["env"] for e in events) == names
    assert len({e.id for e in events}) == count


def cli(capsys, config, *args):
    capsys.readouterr()
    code = main(["-c", str(config), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_env_list_prints_every_one_of_a_thousand_environments(engine, tmp_path, capsys):
    # Given 1,000 ready environments and 30 deleted ones
    living = fill(engine, MANY, expires_at=lambda n: NOW + timedelta(days=1))
    ended = fill(engine, 30, prefix="gone", state=DELETED)
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state")}))

    # When `doppel env list` runs, as a table and as json, and with --all
    table = cli(capsys, config, "env", "list").splitlines()
    listed = json.loads(cli(capsys, config, "env", "list", "-o", "json"))
    everything = json.loads(cli(capsys, config, "env", "list", "--all", "-o", "json"))

    # Then the table has a header and one line per living environment, in the order they were made; json the
    # same; --all the deleted ones too
    assert table[0].split()[:3] == ["NAME", "STATE", "FROM"]
    assert [line.split()[0] for line in table[1:]] == living
    assert [row["name"] for row in listed] == living
    assert all(row["state"] == READY and row["endpoints"] == {"root": f"/srv/{row['name']}"} for row in listed)
    assert [row["name"] for row in everything] == living + ended
