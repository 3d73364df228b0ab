import hashlib
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


def content_digest(root: Path) -> dict[str, str]:
    """Like tree_digest, but a SQLite database is compared by its rows (a dump's sha256), not its
    bytes: a checkpoint rewrites pages without changing a row."""
    import sqlite3
    digest = {}
    for rel in tree_digest(root):
        path = root / rel
        if rel.endswith("-wal"):
            continue  # part of its database, compared through the dump
        if path.read_bytes()[:16] == b"SQLite format 3\x00":
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                dump = "\n".join(conn.iterdump())
            digest[rel] = "rows:" + hashlib.sha256(dump.encode()).hexdigest()
        else:
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


class CloudOverride:
    """The real driver, except for the verbs a subclass defines (a cloud that answers otherwise); the subclass
    reaches the real one as `self._real`."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)


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
        from core.broker import event_message
        from doppel.cli.common import build_event
        event = build_event(event_type, data, source="test")
        self.app.broker.publish([event_message(event)])
        self.app.broker.run_until_idle(timeout=120)
        return event

    def events(self, event_type=None, correlation_id=None):
        return self.app.audit.events(event_type=event_type, correlation_id=correlation_id)

    def replay_parked(self, function: str) -> None:
        """The message `function` parked, put back on its queue by `doppel dlq replay`'s own replay, and run."""
        from bus import topology
        from doppel.cli.bus import _replay
        _replay(self.app, function, self.app.broker.get(topology.dead_queue(function)))
        self.app.broker.run_until_idle(timeout=120)


@pytest.fixture(autouse=True)
def _state_database(state_db_url):
    """Every flow test on the state databases chosen (tests/support/state_db.py): DOPPEL_DB_URL set or unset."""
    return state_db_url


@pytest.fixture
def shop(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    shop = Shop(tmp_path)
    yield shop
    shop.app.close()
