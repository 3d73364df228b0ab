"""What the environment chain does on every cloud driver, stated once and run on each (`bed`: openstack, aws).

Each test runs the real functions on the embedded bus against the cloud's test bed and removes what it made,
so the next one (reap above all) sees a clean cloud.
"""
from __future__ import annotations

import json
import uuid

import pytest
import yaml

from core.cloud import Snapshot
from core.registry import FAILED, READY
from doppel.cli.reap import orphans, reap
from tests.support.cloud_doppel import unique_env
from tests.support.waiting import wait_for


@pytest.fixture
def doppel(bed, tmp_path):
    instance = bed.doppel(tmp_path)
    yield instance
    instance.close()


def test_production_is_cloned_from_its_snapshots_with_its_own_credentials_and_a_replay_makes_nothing_new(
        bed, doppel):
    env_name = unique_env("clone")
    production_before = bed.production_state()
    request_id = str(uuid.uuid4())
    try:
        # When a copy of production is requested (the scheduler's poll ticks finish the cloud's operations)
        doppel.request(env_name, event_id=request_id)
        env = doppel.settle(env_name, seconds=bed.settle_seconds)

        # Then it is ready, the whole chain ran, and its endpoints are its stack's outputs
        assert env.state == READY, env.reason
        chain = {e.type for e in doppel.events() if e.data.get("env") == env_name}
        assert {"env.requested", "snapshot.done", "stack.ready", "env.ready"} <= chain
        assert env.endpoints["base_url"] == bed.base_url(env_name)

        # Its stack was made from the snapshot taken for it, every part of which carries the environment's tag
        snapshot = next(e for e in doppel.events("snapshot.done") if e.data["env"] == env_name).data["snapshot"]
        parts = {(c["kind"], c["name"]): c["location"] for c in snapshot["components"]}
        assert bed.made_from(env_name) == parts
        assert {kind_name: bed.env_tag(kind_name[0], part) for kind_name, part in parts.items()} == {
            kind_name: env_name for kind_name in parts}

        # With credentials of its own: never production's, on no event and in no endpoint
        password = bed.credential(env_name)
        assert password and password != bed.production_password
        assert all(password not in json.dumps(e.data, default=str) for e in doppel.events())
        assert password not in json.dumps(env.endpoints)

        # And production is as it was
        assert bed.production_state() == production_before

        # When env.requested is replayed (same id), nothing new is made
        made = bed.leftovers(env_name)
        assert {kind: len(ids) for kind, ids in made.items()} == bed.made
        doppel.request(env_name, event_id=request_id)
        doppel.settle(env_name, seconds=bed.settle_seconds)
        assert bed.leftovers(env_name) == made

        # nor when a worker that died before its ack runs the snapshot and clone steps again with the same key
        # (the ledger drops a replayed event, so only the driver's own lookups can show this)
        key = snapshot["tags"]["doppel-key"]
        assert doppel.cloud.snapshot(bed.production, env_name, key).id == snapshot["id"]
        doppel.cloud.create_stack(env_name, Snapshot.from_dict(snapshot), {}, key)
        assert bed.leftovers(env_name) == made
    finally:
        doppel.remove(env_name, bed.leftovers)


def test_a_stack_the_cloud_refuses_fails_the_env_with_the_clouds_reason_and_leaves_nothing(bed, tmp_path):
    doppel, reason_words = bed.refusing_doppel(tmp_path)
    env_name = unique_env("refused")
    try:
        doppel.request(env_name)
        env = doppel.settle(env_name, seconds=bed.settle_seconds)

        # Then the environment failed at the clone step, with the cloud's own reason
        assert env.state == FAILED
        (failed,) = [e.data for e in doppel.events("env.failed") if e.data["env"] == env_name]
        assert failed["step"] == "clone", failed
        assert all(word in failed["reason"] for word in reason_words), failed["reason"]
        assert doppel.app.registry.latest(env_name).reason.endswith(failed["reason"])
        # And the compensation removed what the chain had made: the stack and the snapshot taken for it
        wait_for(lambda: not bed.leftovers(env_name), 180, f"nothing of {env_name} left", interval=1)
    finally:
        doppel.remove(env_name, bed.leftovers)
        doppel.close()


def test_reap_lists_planted_orphans_and_removes_exactly_those(bed, doppel, capsys, tmp_path):
    ghost = unique_env("ghost")  # an environment the registry never heard of
    planted = bed.plant_orphans(ghost)
    planted_in_cloud = bed.leftovers(ghost)
    production_before = bed.production_state()
    try:
        # When reap runs dry (as `doppel reap --dry-run`, on this Doppel's config and registry)
        from doppel.cli import main
        config = tmp_path / "doppel.yaml"
        config.write_text(yaml.safe_dump(doppel.document))
        assert main(["--config", str(config), "reap", "--dry-run"]) == 0
        printed = capsys.readouterr().out
        found = orphans(doppel.cloud, doppel.app.registry, [bed.production])

        # Then it lists the planted resources, and only those, and removes nothing
        assert {(o.resource.kind, o.resource.id) for o in found} == planted
        assert all(o.why == "unknown" for o in found)
        assert f"{len(planted)} orphaned resources (dry run: nothing removed)" in printed
        assert all(f"would remove {o.resource.kind} {o.resource.name}" in printed for o in found), printed
        assert bed.leftovers(ghost) == planted_in_cloud

        # When reap runs for real, then exactly those are gone and production is untouched
        reap(doppel.cloud, doppel.app.registry, dry_run=False, productions=[bed.production])
        wait_for(lambda: not bed.leftovers(ghost), 120, "planted resources removed", interval=1)
        assert orphans(doppel.cloud, doppel.app.registry, [bed.production]) == []
        assert bed.production_state() == production_before
    finally:
        bed.remove_planted(ghost)
