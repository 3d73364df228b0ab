import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.harness import Bus
from tests.support import state_db
from tests.support.rabbitmq import delete_orphan_vhosts, fresh_vhost


def pytest_configure(config):
    # The validated configurations Doppel keeps between commands (doppel/config_cache.py): in a folder of the
    # run's own, not the user's ~/.cache, inherited by the processes the tests start (XDG_CACHE_HOME too, for
    # those started without the DOPPEL_ variables).
    if "DOPPEL_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="doppel-test-cache-")
        os.environ["DOPPEL_CACHE_DIR"] = folder
        os.environ["XDG_CACHE_HOME"] = folder
        atexit.register(shutil.rmtree, folder, True)


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help="run only the tests that need no real service (no RabbitMQ, Swift or OpenStack)")
    state_db.add_option(parser)


def pytest_generate_tests(metafunc):
    state_db.parametrize(metafunc)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--fast"):
        return
    skip = pytest.mark.skip(reason="--fast: needs a real service")
    for item in items:
        if any(item.get_closest_marker(m) for m in ("rabbitmq", "swift", "openstack", "dns", "postgresql", "mariadb",
                                                     "chromium", "aws", "ssh",
                                                     "prometheus", "loopmount", "rabbitmq_cluster")):
            item.add_marker(skip)


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def bus(request, tmp_path, state_db_url):
    """The same flow on the in-memory bus and on a real RabbitMQ."""
    url = None
    if request.param == "rabbitmq":
        url = request.getfixturevalue("amqp_url")
    harness = Bus(request.param, tmp_path, url, db_url=state_db_url)
    yield harness
    harness.close()


@pytest.fixture
def memory_bus(tmp_path, state_db_url):
    harness = Bus("memory", tmp_path, db_url=state_db_url)
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def pg_state_server():
    """The PostgreSQL test server (tests/services/postgresql.sh, reused when running), for state databases."""
    return state_db.start_postgresql()


@pytest.fixture
def state_db_kind(request):
    return request.param


@pytest.fixture
def state_db_url(request, state_db_kind, monkeypatch):
    """The test's state database, as DOPPEL_DB_URL sets it for the App and the processes the test starts: None on
    SQLite (DOPPEL_DB_URL unset: the file under state_dir), else a fresh PostgreSQL database's URL."""
    if state_db_kind == state_db.SQLITE:
        monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
        yield None
        return
    server = request.getfixturevalue("pg_state_server")
    name = server.create()
    monkeypatch.setenv("DOPPEL_DB_URL", server.url(name))
    yield server.url(name)
    server.drop(name)


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rabbitmq_server():
    """A real RabbitMQ on 127.0.0.1:5672, started by the project's own script (reused when running)."""
    subprocess.run(["bash", str(ROOT / "tests/services/rabbitmq.sh")], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("CI") else None)
    delete_orphan_vhosts()  # leftovers of dead runs slow every AMQP handshake
    return "127.0.0.1:5672"


@pytest.fixture
def amqp_url(rabbitmq_server):
    """A fresh vhost per test, so queues and bindings of one test never see another's events."""
    vhost = fresh_vhost("doppel-test-")
    # A test that restarts the broker may have left it starting up: wait for it.
    subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "60"], check=True)
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True)
    yield f"amqp://guest:guest@{rabbitmq_server}/{quote(vhost, safe='')}?heartbeat=10"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)


@pytest.fixture(scope="session")
def rabbitmq_cluster():
    """The 3-node RabbitMQ cluster on 127.0.0.1:5681-5683 (tests/services/rabbitmq-cluster.sh, reused when
    running); its node names."""
    from tests.support.rabbitmq import CLUSTER_NODES
    subprocess.run(["bash", str(ROOT / "tests/services/rabbitmq-cluster.sh")], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("CI") else None)
    return CLUSTER_NODES


@pytest.fixture
def cluster_amqp_url(rabbitmq_cluster):
    """A fresh vhost on the cluster; the three nodes' URLs to it, comma-separated (as DOPPEL_AMQP_URL takes them)."""
    from tests.support.rabbitmq import CLUSTER_PORTS, cluster_ctl
    vhost = fresh_vhost("doppel-test-")
    cluster_ctl("add_vhost", vhost)
    cluster_ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield ",".join(f"amqp://guest:guest@127.0.0.1:{port}/{quote(vhost, safe='')}?heartbeat=10"
                   for port in CLUSTER_PORTS)
    cluster_ctl("delete_vhost", vhost, check=False)
