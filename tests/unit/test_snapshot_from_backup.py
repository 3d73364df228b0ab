"""A request with a data version: the snapshot step hands the cloud a restore that writes that backup's files and
server databases where the cloud says (the logic of functions/snapshot.py; the flow tests' sample production has
no server database, the real ones are in the integration tests)."""
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from core.registry import REQUESTED, SNAPSHOTTING, Environment
from functions import snapshot
from schemas.envelope import Event


class OneEnvironment:
    """The registry verbs the step uses, for one new environment."""

    def __init__(self, env):
        self.env = env

    def request(self, **asked):
        return self.env, True

    def living(self, name):
        return None

    def move(self, env, to_state, **why):
        self.env = replace(env, state=to_state)
        return self.env


class RestoringCloud:
    """A cloud whose snapshot of a backup asks the restore for its files and one server database."""

    def snapshot(self, production, env, key, restore=None):
        restore(Path("/snapshots/root"), {"orders": {"kind": "postgresql", "database": f"doppel_{env}_orders"}})
        return SimpleNamespace(status="IN_PROGRESS")


def test_a_snapshot_from_a_backup_restores_its_server_databases_into_the_places_the_cloud_gives():
    # Breaks caught: the restore given no places for the backup's server databases (None, or left out: a backup
    # holding one fails every environment asked from it, or writes where the backup was taken)
    restored = []
    env = Environment(*[None] * len(Environment.__dataclass_fields__))
    env = replace(env, id=1, name="as-backed-up", request_id="test/1", production="shop", state=REQUESTED,
                  data_version="b-0001")
    deps = SimpleNamespace(config={"productions": {"shop": {}}, "environments": {"max_ttl": "2d"}},
                           registry=OneEnvironment(env), cloud=RestoringCloud(),
                           backups=SimpleNamespace(restore=lambda *args, **kw: restored.append((args, kw))))
    request = Event(type="env.requested", source="test", data={"env": "as-backed-up", "production": "shop"})

    assert snapshot.handle(request, deps) == []

    assert deps.registry.env.state == SNAPSHOTTING
    assert restored == [(("b-0001", Path("/snapshots/root")),
                         {"databases": {"orders": {"kind": "postgresql", "database": "doppel_as-backed-up_orders"}}})]
