"""The sync function's hold on the DR row, for a local and a cloud target: what the row says while the copy is made
(the `syncing` state, held by the sync's own event, so a failover waits and a redelivery resumes), which
production's backup is copied, and what a sync that finds another one under way says. The driver's DR verbs are
a stand-in that records what it was asked and what the row said at that moment; the state table is real, and the
copies themselves are proven on the local driver (tests/flow/test_dr.py) and the test beds."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.deps import Deps
from core.dr_state import NORMAL, SYNCING, DrStates
from functions import sync
from schemas.envelope import Event
from tests.support.state_db import migrated_engine

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)
SHOP_BACKUP = "20261203T010000Z-aaaaaa"
TARGETS = {"local": {"env": "shop-dr"}, "cloud": {"driver": "openstack", "env": "shop-dr", "parameters": {}}}


class Driver:
    """The DR verbs a sync uses, each recording (verb, production or backup, the row's state, its holder)."""

    def __init__(self, states: DrStates, root: Path):
        self.states, self.root, self.calls = states, root, []

    def _saw(self, verb: str, what) -> None:
        row = self.states.get("shop")
        self.calls.append((verb, what, row.state, row.holder))

    # a local target: the DR copy restored beside itself and swapped, its server databases into its own
    def database_targets(self, env, production):
        return {"rentals": {"database": f"doppel_{env}_rentals"}}

    def restore_target(self, env, production=None, key=None):
        self._saw("target", production)
        return self.root

    def restore_in_place(self, env, restore, *, keep_old=False, label):
        self._saw("swap", label)
        restore(self.root)

    # a cloud target: images and backup copied to the DR side
    def dr_copy_images(self, production, target):
        self._saw("images", production)
        return {"app": "kept img-1"}

    def dr_copy_backup(self, production, target, backup_id, source):
        self._saw("backup", (production, backup_id))
        return "copied"


class Backups:
    """Two productions' backups, found as the catalogue finds them: by production (None: all of them)."""

    def __init__(self):
        self.entries = [SimpleNamespace(id=SHOP_BACKUP, env="shop", created_at=NOW - timedelta(hours=1)),
                        SimpleNamespace(id="20261203T013000Z-bbbbbb", env="blog",  # newer, of another production
                                        created_at=NOW - timedelta(minutes=30))]
        self.restored, self.store = [], "store"

    def newest(self, env, verified_only=False):
        mine = [e for e in self.entries if not env or e.env == env]
        return mine[-1] if mine else None

    def restore(self, backup_id, into, databases=None):
        self.restored.append(backup_id)
        self.databases = databases


@pytest.fixture(params=sorted(TARGETS))
def world(request, tmp_path):
    states = DrStates(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"), clock=lambda: NOW)
    policy = {"target": TARGETS[request.param], "alarms": ["shop-down"], "backup": "newest"}
    deps = Deps(config={"dr": {"shop": policy, "blog": policy}, "productions": {"shop": {}, "blog": {}}},
                cloud=Driver(states, tmp_path / "shop-dr"), backups=Backups(), dr=states, clock=lambda: NOW)
    return deps, request.param


def run(deps, due: Event) -> list:
    return sync.handle(due, deps.for_event(due, sync.NAME, due.id, sync.EMITS))


def due() -> Event:
    return Event(type="sync.due", source="test", time=NOW, data={"production": "shop"})


def copied(deps, kind: str) -> list:
    """What the driver was asked to copy, with the row's state and holder at that moment."""
    if kind == "local":
        return [call for call in deps.cloud.calls if call[0] == "swap"]
    return [call for call in deps.cloud.calls if call[0] in ("images", "backup")]


def test_a_sync_copies_its_productions_backup_holding_syncing_under_its_own_event_and_lets_go_after(world):
    # Breaks caught: the copy made without taking `syncing` (a failover would not wait for it), or taken without
    # the event as its holder (a redelivery could not resume it), or not let go after; another production's
    # newer backup copied; the sync.done not naming the production
    deps, kind = world
    event = due()

    (done,) = run(deps, event)

    assert done.type == "sync.done" and done.data == {"production": "shop", "backup_id": SHOP_BACKUP}
    expected = [("swap", SHOP_BACKUP, SYNCING, event.id)] if kind == "local" else [
        ("images", "shop", SYNCING, event.id), ("backup", ("shop", SHOP_BACKUP), SYNCING, event.id)]
    assert copied(deps, kind) == expected
    if kind == "local":
        assert deps.backups.restored == [SHOP_BACKUP] and deps.cloud.calls[0] == ("target", "shop", SYNCING, event.id)
        # the server databases go to the DR copy's own, as the driver names them
        assert deps.backups.databases == {"rentals": {"database": "doppel_shop-dr_rentals"}}
    row = deps.dr.get("shop")
    assert row.state == NORMAL and row.holder is None


def test_a_redelivered_sync_resumes_the_hold_its_first_delivery_took(world):
    # Break caught: a redelivery (its worker died while copying) taking the row it holds itself for another's
    # and skipping, which would leave the row `syncing` until a failover gives up waiting for it
    deps, kind = world
    event = due()
    assert deps.dr.move("shop", (NORMAL,), SYNCING, holder=event.id)  # as the first delivery left it

    (done,) = run(deps, event)

    assert done.data == {"production": "shop", "backup_id": SHOP_BACKUP}
    assert copied(deps, kind) and all(call[2:] == (SYNCING, event.id) for call in copied(deps, kind))
    row = deps.dr.get("shop")
    assert row.state == NORMAL and row.holder is None


def test_a_sync_while_another_holds_syncing_copies_nothing_and_says_so(world):
    # Breaks caught: two syncs copying into the same DR copy at once; the refusal not naming the production, or
    # not saying what the row became
    deps, kind = world
    assert deps.dr.move("shop", (NORMAL,), SYNCING, holder="another-sync")

    (done,) = run(deps, due())

    assert done.type == "sync.done"
    assert done.data == {"production": "shop", "skipped": "production shop became syncing before the sync began"}
    assert copied(deps, kind) == [] and deps.backups.restored == []
    row = deps.dr.get("shop")
    assert row.state == SYNCING and row.holder == "another-sync"  # left to the sync that holds it
