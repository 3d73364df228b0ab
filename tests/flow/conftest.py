import hashlib
import os
from pathlib import Path

import pytest

import functions
from clouds.local.sample import make_sample_production
from doppel.app import App
from doppel.config import parse_config


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path.

    Opening a WAL-mode SQLite database, as any reader does, leaves a `-shm` index
    and an empty `-wal` beside it; those hold no data and are left out. A `-wal`
    with content is data, and is counted.
    """
    digest = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith("-shm"):
            continue
        if path.name.endswith("-wal") and path.stat().st_size == 0:
            continue
        digest[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


class Shop:
    """A sample production and an embedded Doppel serving every function, on virtual time."""

    def __init__(self, tmp_path: Path, **config):
        self.production = tmp_path / "production" / "shop"
        entry = make_sample_production(self.production)
        document = {"state_dir": str(tmp_path / "state"), "productions": {"shop": entry},
                    "bus": {"retry": {"attempts": 3, "first_delay": "200ms"}}, **config}
        self.app = App(parse_config(document, None), role="test", fast_forward=True)
        self.worker = self.app.worker(functions.FUNCTIONS)
        self.worker.start()

    def publish(self, event_type, **data):
        from bus.worker import event_message
        from doppel.commands_bus import build_event
        event = build_event(event_type, data, source="test")
        self.app.broker.publish([event_message(event)])
        self.app.broker.run_until_idle(timeout=120)
        return event

    def events(self, event_type=None, correlation_id=None):
        return self.app.audit.events(event_type=event_type, correlation_id=correlation_id)


@pytest.fixture
def shop(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    shop = Shop(tmp_path)
    yield shop
    shop.app.close()
