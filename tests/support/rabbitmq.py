"""RabbitMQ outages for tests: the node's app stopped for a block, and always started again."""
from __future__ import annotations

import subprocess
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
