"""A real OpenStack (tests/services/openstack.sh), a production on it, and an embedded Doppel that clones it.

The production is a Heat stack with a server and a data volume (templates/production.yaml),
made for each test session and deleted after it. Each test gets its own Doppel (state
directory, registry, in-memory bus running every function) whose only production, `shop`,
is that stack.
"""
from __future__ import annotations

import io
import os
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.integration.databases.conftest import maria_server, pg_server  # noqa: F401 - the test servers, as fixtures
from tests.support.cloud_doppel import EmbeddedDoppel, unique_env  # noqa: F401 - unique_env for the tests
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CLOUD = "doppel-test"
FLAVOR, HUGE_FLAVOR = "doppel.tiny", "doppel.huge"
# Unique per test session: reap judges only its own productions' resources, so two sessions
# sharing the cloud (a developer's and CI's) never reap each other's environments.
SESSION = uuid.uuid4().hex[:6]
PRODUCTION = f"shop-{SESSION}"
PRODUCTION_STACK_PREFIX = "doppel-it-production-"
PRODUCTION_STACK = PRODUCTION_STACK_PREFIX + SESSION
LEGACY_PRODUCTION_STACK = "doppel-it-production"  # the one stack earlier versions of these tests shared
# The production's databases, as its stack's outputs say: on the test bed's PostgreSQL and MariaDB (the fake
# hypervisor runs no database server), made by the tests that need them
PRODUCTION_DB_HOST, PRODUCTION_DATABASE = "127.0.0.1", f"doppel_it_shop_{SESSION}"


def connect():
    """The control plane, started (or reused) by the project's own script; an SDK connection for checks.

    (Served once a session as the `openstack_cloud` fixture of tests/integration/conftest.py.)"""
    started = time.monotonic()
    subprocess.run(["bash", str(ROOT / "tests/services/openstack.sh")], check=True,
                   stdout=None if os.environ.get("CI") else subprocess.DEVNULL)
    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", os.environ.get("CLOUDS_YAML", "/etc/doppel-test/clouds.yaml"))
    import openstack
    conn = openstack.connect(cloud=CLOUD)
    conn.bring_up_seconds = time.monotonic() - started
    yield conn
    conn.close()


def make_production(conn):
    """The production: a Heat stack with one server and one volume, made for this test session and deleted
    after it (served once a session as the `openstack_production_stack` fixture of tests/integration/conftest.py).

    Never one left by an earlier session: Nova's fake hypervisor keeps its instances in memory, so after
    nova-compute restarts (a new machine from a snapshot, a restarted control plane) an older server is
    only a database row that may still read "running", and Nova leaves a snapshot of it in task_state
    image_snapshot for ever. Productions of sessions that died without cleaning up are removed here.
    """
    image = conn.image.find_image("doppel-it-base")
    if image is None or image.status != "active":
        image = conn.image.create_image(name="doppel-it-base", disk_format="raw", container_format="bare",
                                        data=io.BytesIO(b"\0" * 65536), allow_duplicates=True)
        wait_for(lambda: conn.image.get_image(image.id).status == "active", 60, "base image active", interval=1.0)
    conn.compute.find_flavor(FLAVOR) or conn.compute.create_flavor(name=FLAVOR, ram=64, vcpus=1, disk=1)
    # Exists (so Heat accepts the template) but no host can hold it: the stack fails at the scheduler.
    conn.compute.find_flavor(HUGE_FLAVOR) or conn.compute.create_flavor(name=HUGE_FLAVOR, ram=10_000_000, vcpus=1,
                                                                        disk=1)
    remove_abandoned_productions(conn)
    template = yaml.safe_load((HERE / "templates/production.yaml").read_text())
    stack = conn.orchestration.create_stack(name=PRODUCTION_STACK, template=template, parameters={
        "image": image.id, "flavor": FLAVOR, "db_password": "production-secret", "db_host": PRODUCTION_DB_HOST,
        "db_name": PRODUCTION_DATABASE})
    try:
        conn.orchestration.wait_for_status(stack, status="CREATE_COMPLETE", failures=["CREATE_FAILED"],
                                           interval=2, wait=300)
        yield conn.orchestration.get_stack(stack.id)
    finally:
        conn.orchestration.delete_stack(stack, ignore_missing=True)


@pytest.fixture(scope="session")
def production_stack(openstack_production_stack):
    """This directory's production: the session's openstack one."""
    return openstack_production_stack


def remove_abandoned_productions(conn, older_than_s: float = 3 * 3600) -> None:
    """Delete the productions of test sessions that ended without deleting theirs (killed, or crashed).

    A session runs well under an hour; one started hours ago is over, so a developer's suite and CI
    sharing the cloud never delete each other's production."""
    now = time.time()
    for stack in conn.orchestration.stacks():
        if stack.name == LEGACY_PRODUCTION_STACK:
            conn.orchestration.delete_stack(stack, ignore_missing=True)
        elif stack.name.startswith(PRODUCTION_STACK_PREFIX) and stack.name != PRODUCTION_STACK:
            created = datetime.fromisoformat(stack.created_at.replace("Z", "+00:00")).timestamp()
            if now - created > older_than_s:
                conn.orchestration.delete_stack(stack, ignore_missing=True)


def production_entry(flavor: str = FLAVOR, databases: list | None = None, anonymise: list | None = None,
                     logs: list | None = None, **parameters) -> dict:
    """The test production; `databases`, their `anonymise` rules and extra template `parameters` for a test that
    clones or backs data up, `logs` for one that keeps what the environment logged."""
    return {"driver": "openstack", "cloud": CLOUD, "region": "RegionOne", "stack": PRODUCTION_STACK,
            "template": str(HERE / "templates/environment.yaml"),
            "parameters": {"image": "{snapshot.image.app}", "data_snapshot": "{snapshot.volume.data}",
                           "flavor": flavor, "db_password": "{secrets.db_password}", "config_url": "{config_url}",
                           **parameters},
            "bundle": {"app.base_url": "{outputs.base_url}", "database.password": "{secrets.db_password}",
                       "app.env": "{env}"},
            "clone": {"secrets": ["db_password"], "crons": "disable", "anonymise": anonymise or []},
            "databases": databases or [], "logs": logs or []}


class Doppel(EmbeddedDoppel):
    """An embedded Doppel with one openstack production, its functions served on the in-memory bus."""

    def __init__(self, tmp_path: Path, backups_container: str | None = None, **entry_options):
        document = {"state_dir": str(tmp_path / "state"),
                    "productions": {PRODUCTION: production_entry(**entry_options)},
                    "bus": {"retry": {"attempts": 3, "first_delay": "200ms"}}}
        if backups_container:  # backups in the test cloud's Swift, through Keystone
            document["backups"] = {"store": {"type": "swift", "container": backups_container, "cloud": CLOUD}}
        super().__init__(document, PRODUCTION)


@pytest.fixture
def doppel(openstack_cloud, production_stack, tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    instance = Doppel(tmp_path)
    yield instance
    instance.close()


def leftovers(conn, env: str) -> dict:
    """Everything of `env` still in the cloud, by kind (empty when nothing is left)."""
    from clouds.openstack.resources import container_name, stack_name
    found = {
        "images": [i.id for i in conn.image.images() if (i.properties or {}).get("doppel-env") == env],
        "volume_snapshots": [s.id for s in conn.block_storage.snapshots(details=True)
                             if (s.metadata or {}).get("doppel-env") == env],
        "stacks": [s.id for s in conn.orchestration.stacks() if s.name == stack_name(env)],
        "containers": [c.name for c in conn.object_store.containers() if c.name == container_name(env)],
    }
    return {kind: ids for kind, ids in found.items() if ids}
