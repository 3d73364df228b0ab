"""RabbitMQ for tests: vhosts of their own (and the cleanup of those a dead run left), and outages: the node's
app stopped for a block, and always started again."""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True).stdout


@contextmanager
def node_stopped() -> Iterator[None]:
    """RabbitMQ's app stopped during the block and started again (and awaited) after it, whatever happens in it:
    a failing assertion inside must not leave the broker down for every test after it."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup", "--timeout", "60")


CLUSTER_NODES = ("rabbit-c1@localhost", "rabbit-c2@localhost", "rabbit-c3@localhost")  # rabbitmq-cluster.sh's
CLUSTER_PORTS = (5681, 5682, 5683)


def cluster_ctl(*args: str, node: str | None = None, check: bool = True) -> str:
    """rabbitmqctl on a node of the test cluster: `node`, else the first that answers."""
    for candidate in (node,) if node else CLUSTER_NODES:
        run = subprocess.run(["rabbitmqctl", "-q", "-n", candidate, *args], capture_output=True, text=True)
        if run.returncode == 0 or node:
            if check and run.returncode:
                raise subprocess.CalledProcessError(run.returncode, run.args, run.stdout, run.stderr)
            return run.stdout
    if check:
        raise subprocess.CalledProcessError(run.returncode, run.args, run.stdout, run.stderr)
    return ""


@contextmanager
def cluster_node_stopped(node: str) -> Iterator[None]:
    """A cluster node's app stopped during the block (its clients lose their connections), started after it."""
    cluster_ctl("stop_app", node=node)
    try:
        yield
    finally:
        cluster_ctl("start_app", node=node)
        cluster_ctl("await_startup", "--timeout", "60", node=node)


TEST_VHOST_PREFIXES = ("doppel-test-", "doppel-broker-test-")


def fresh_vhost(prefix: str) -> str:
    """A fresh vhost name for this test process: `<prefix><pid>-<random>`, so that another test run on the same
    broker can tell whose it is (delete_orphan_vhosts)."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def delete_orphan_vhosts() -> list[str]:
    """Delete test vhosts whose test process is gone (killed, or the broker restarted under it): each keeps its
    quorum queues, and a few dozen of them slow every AMQP handshake past its timeout. Those of a test run still
    going on beside this one are left alone."""
    listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=False)
    deleted = []
    for vhost in listed.stdout.split():
        if not vhost.startswith(TEST_VHOST_PREFIXES):
            continue
        owner = vhost.split("-test-", 1)[1].split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)):
            continue
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True)
        deleted.append(vhost)
    return deleted


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
