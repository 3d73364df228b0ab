"""A PostgreSQL production on this host, cloned by the whole chain (embedded bus) as a server instance of its own
on a reflinked copy of its data directory (clouds.local.pg_thin), on a loop-mounted XFS (tests/support/loopfs.py).

The production is a cluster of the test's own (tests/support/pg_cluster.py), never the
shared server on :5432. Cost: one mkfs and mount, an initdb, three chains and four
instance starts: 8.5 s for the three tests on two shared cores (load about 6).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psycopg
import pytest

import functions
from clouds.databases import postgresql
from clouds.local import LocalDriver, pg_instances
from clouds.local.copying import REFLINKS
from clouds.local.sample import make_sample_production
from core.cloud import DriverError
from core.registry import READY
from doppel.app import App
from doppel.config import parse_config
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import make_rental_shop
from tests.support.loopfs import LoopUnavailable, loop_filesystem
from tests.support.pg_cluster import ClusterUnavailable, pg_cluster
from tests.unit.clouds.test_thin_clones import extents

pytestmark = [pytest.mark.loopmount, pytest.mark.postgresql]
PASSWORD_ENV = "DOPPEL_TEST_THIN_PG_PASSWORD"


@pytest.fixture(scope="module")
def xfs():
    try:
        with loop_filesystem("xfs", 1 << 30) as mount_point:
            os.chmod(mount_point.parent, 0o755)  # the postgres user reaches its data directory through here
            yield mount_point
    except LoopUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def production_cluster(xfs):
    try:
        with pg_cluster(xfs) as cluster:
            yield cluster
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def shop(xfs, production_cluster, request, monkeypatch, tmp_path):
    """The sample production and a rental shop in the test's cluster, with an embedded Doppel serving the chain."""
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    REFLINKS.forget()
    server = production_cluster.server(PASSWORD_ENV)
    work = xfs / re.sub(r"\W", "_", request.node.name)[:60]
    work.mkdir()
    database = make_rental_shop(server)
    entry = make_sample_production(work / "production")
    entry["components"].append({"kind": "postgresql", "name": "rentals", "host": "127.0.0.1",
                                "port": production_cluster.port, "database": database, "user": "doppel",
                                "password_env": PASSWORD_ENV, "data_directory": str(production_cluster.data)})
    if "no_reflink" in request.node.name:  # instances on another filesystem than production's data directory
        entry["components"][-1]["instances_dir"] = str(tmp_path / "instances")
    rules = [rule for rule in rental_shop.RULES if "without_a_rule" not in request.node.name
             or (rule["table"], rule["column"]) != ("address", "phone")]
    entry["clone"]["anonymise"] += [{"database": "rentals", **rule} for rule in rules]
    app = App(parse_config({"state_dir": str(work / "state"), "productions": {"shop": entry},
                            "bus": {"retry": {"attempts": 1, "first_delay": "200ms"}}}, None),
              role="test", fast_forward=True)
    worker = app.worker(functions.FUNCTIONS)
    worker.start()

    def publish(event_type, **data):
        from core.broker import event_message
        from doppel.cli.common import build_event
        app.broker.publish([event_message(build_event(event_type, data, source="test"))])
        app.broker.run_until_idle(timeout=300)

    yield app, publish, server, database, work / "state" / "local" / "instances"
    app.close()
    for pid_file in [*work.glob("state/*/instances/*/data/postmaster.pid"),
                     *tmp_path.glob("instances/*/data/postmaster.pid")]:  # a failed test's instance: stopped
        pg_instances.remove(pid_file.parent.parent, production_cluster.bin_dir)
    postgresql.drop(server, database)
    shutil.rmtree(work, ignore_errors=True)


def personal(server, database, port=None, password=None, user=None) -> dict:
    with (postgresql.connect(server, database) if port is None else psycopg.connect(
            host="127.0.0.1", port=port, user=user, password=password, dbname=database)) as conn:
        return {(t, c): {row[0] for row in conn.execute(f"SELECT {c} FROM {t} WHERE {c} IS NOT NULL")}
                for t, c in rental_shop.PERSONAL}


def processes_under(path: Path) -> list[str]:
    """Command lines of the processes started on anything under `path` (a postgres names its data directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in line:
            found.append(line)
    return found


def test_the_env_gets_a_server_of_its_own_anonymised_on_a_thin_copy_and_teardown_leaves_nothing(shop,
                                                                                             production_cluster):
    app, publish, server, database, instances = shop
    before = personal(server, database)

    publish("env.requested", env="thin-one", production="shop")

    env = app.registry.living("thin-one")
    assert env.state == READY, env.reason
    port = env.endpoints["db_rentals_port"]
    assert port != production_cluster.port and env.endpoints["db_rentals_host"] == "127.0.0.1"
    assert env.endpoints["db_rentals_database"] == database and env.endpoints["db_rentals_user"] == "doppel"
    password = Path(env.endpoints["db_rentals_password_file"]).read_text()
    assert password != production_cluster.password

    # The env's own server answers on its own port with a fresh password; production's is refused there
    masked = personal(None, database, port, password, "doppel")
    for user, secret in (("doppel", production_cluster.password), ("shop", production_cluster.password + "-shop")):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=port, user=user, password=secret, dbname=database).close()
    with psycopg.connect(host="127.0.0.1", port=port, user="doppel", password=password, dbname=database) as conn:
        assert conn.execute("SELECT count(*) FROM rental").fetchone()[0] == 120
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False  # recovered, writable

    # Anonymised there: no production value in any personal column; production as it was, and still running
    for key, values in masked.items():
        assert values and not values & before[key], key
    assert personal(server, database) == before

    # Thin: the env's copy shares blocks with production's data directory (a table the anonymiser left alone)
    env_data = instances / "doppel_thin_one_rentals" / "data"
    with postgresql.connect(server, database) as conn:
        relation = conn.execute("SELECT pg_relation_filepath('ledger')").fetchone()[0]
    assert any(shared for _start, _length, shared in extents(env_data / relation))

    # Teardown stops the instance and removes it
    assert processes_under(instances)
    publish("env.expired", env="thin-one", reason="ttl")
    assert not processes_under(instances)
    assert not list(instances.iterdir())
    assert personal(server, database) == before


def test_a_personal_column_without_a_rule_stops_and_removes_the_instance_at_once(shop):
    """The driver's own configure, with no chain around it to clean up: the failed anonymisation itself leaves no
    instance running and no copy of production's rows."""
    app, publish, server, database, instances = shop
    driver = LocalDriver(instances.parent.parent / "direct", app.config.raw["productions"])
    instances = driver.state_dir / "instances"
    try:
        snapshot = driver.snapshot("shop", "thin-leaky", "req-1")
        stack = driver.create_stack("thin-leaky", snapshot, {}, "req-1")
        assert processes_under(instances)  # running, closed to all but Doppel's socket

        with pytest.raises(DriverError) as failed:
            driver.configure("thin-leaky", stack, None, {"db_password": "x", "app_secret": "y"})

        assert "address.phone (phone)" in str(failed.value) and "no anonymise rule" in str(failed.value)
        assert not processes_under(instances)
        assert not [entry for entry in instances.iterdir() if not entry.name.startswith(".")]
    finally:
        driver.delete_stack("thin-leaky")


def test_where_no_reflink_is_possible_the_env_gets_a_database_copied_on_the_server_said_once(shop, caplog):
    """instances_dir on another filesystem (tmp_path) than production's data directory (the XFS)."""
    app, publish, server, database, _instances = shop
    caplog.set_level("WARNING", logger="clouds.local.pg_thin")

    publish("env.requested", env="thin-fallback", production="shop")

    env = app.registry.living("thin-fallback")
    assert env.state == READY, env.reason
    copy = env.endpoints["db_rentals_database"]
    assert copy == "doppel_thin_fallback_rentals" and env.endpoints["db_rentals_port"] == server.port
    said = [r.getMessage() for r in caplog.records if "cannot be reflinked" in r.getMessage()]
    assert len(said) == 1 and "the dump/restore path" in said[0]
    masked = personal(server, copy)
    assert all(values and not values & personal(server, database)[key] for key, values in masked.items())
    publish("env.expired", env="thin-fallback", reason="ttl")
    with postgresql.connect(server, "postgres") as conn:
        assert not conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'doppel_%'").fetchall()
