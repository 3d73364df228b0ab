"""The environment chain on the aws driver, against moto's server: clone, replay, a failing stack, expiry."""
from __future__ import annotations

import json
import subprocess
import tarfile
import uuid

import pytest
import yaml
import zstandard

from core.registry import FAILED, READY
from tests.integration.aws.conftest import (
    HERE,
    PRODUCTION,
    PRODUCTION_PASSWORD,
    Doppel,
    client,
    dumps,
    leftovers,
    stack_parameters,
    unique_env,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.aws


def remove_env(doppel, env: str) -> None:
    from core.cloud import TAG_ENV
    doppel.cloud.delete_stack(env, ignore_missing=True)
    for resource in doppel.cloud.find_tagged({TAG_ENV: env}):
        doppel.cloud.delete_resource(resource, ignore_missing=True)
    wait_for(lambda: not leftovers(env), 60, f"env {env} gone")


def test_production_is_cloned_from_its_image_and_rds_snapshot_and_a_replay_makes_nothing_new(doppel):
    env_name = unique_env("clone")
    request_id = str(uuid.uuid4())
    try:
        doppel.request(env_name, event_id=request_id)
        env = doppel.settle(env_name)

        # Then the environment is ready, its endpoints the stack's outputs
        assert env.state == READY, env.reason
        assert env.endpoints["base_url"] == f"http://{env_name}.shop.example.com"
        snapshot = next(e for e in doppel.events("snapshot.done") if e.data["env"] == env_name).data["snapshot"]
        parts = {(c["kind"], c["name"]): c["location"] for c in snapshot["components"]}
        assert set(parts) == {("image", "Web"), ("db", "Database")}

        # The stack was made from production's image and RDS snapshot, both tagged with the environment
        parameters = stack_parameters(env_name)
        assert parameters["WebImage"] == parts[("image", "Web")]
        assert parameters["DbSnapshot"] == parts[("db", "Database")]
        (image,) = client("ec2").describe_images(ImageIds=[parts[("image", "Web")]])["Images"]
        assert {"Key": "doppel-env", "Value": env_name} in image["Tags"]
        (db_snapshot,) = client("rds").describe_db_snapshots(
            DBSnapshotIdentifier=parts[("db", "Database")])["DBSnapshots"]
        assert {"Key": "doppel-env", "Value": env_name} in db_snapshot["TagList"]
        instance = client("ec2").describe_instances(Filters=[{"Name": "tag:doppel-env", "Values": [env_name]}])
        (web,) = [i for r in instance["Reservations"] for i in r["Instances"]]
        assert web["ImageId"] == parts[("image", "Web")]

        # With credentials of its own (handed over by configure), never production's, and never on an event
        password = parameters["DbPassword"]
        assert password and password != PRODUCTION_PASSWORD
        assert all(password not in dumps(e.data) for e in doppel.events())

        # When env.requested is replayed (same id), no second stack, image or snapshot is made
        before = leftovers(env_name)
        assert {kind: len(ids) for kind, ids in before.items()} == {"images": 1, "db_snapshots": 1, "stacks": 1}
        doppel.request(env_name, event_id=request_id)
        doppel.settle(env_name)
        assert leftovers(env_name) == before

        # nor when a worker that died before its ack runs the snapshot and clone steps again with the same key
        from core.cloud import Snapshot
        key = snapshot["tags"]["doppel-key"]
        again = doppel.cloud.snapshot(PRODUCTION, env_name, key)
        assert again.id == snapshot["id"]
        doppel.cloud.create_stack(env_name, Snapshot.from_dict(snapshot), {}, key)
        assert leftovers(env_name) == before
    finally:
        remove_env(doppel, env_name)


def test_a_stack_cloudformation_refuses_fails_the_env_with_its_reason_and_leaves_nothing(
        aws_env, production_stack, tmp_path):
    # Given a template that wants a parameter the production's entry does not give
    template = json.loads((HERE / "templates/environment.json").read_text())
    template["Parameters"]["InstanceType"] = {"Type": "String"}
    (tmp_path / "environment.json").write_text(json.dumps(template))
    doppel = Doppel(tmp_path, template=tmp_path / "environment.json")
    env_name = unique_env("refused")
    try:
        doppel.request(env_name)
        env = doppel.settle(env_name)

        assert env.state == FAILED
        (failed,) = [e for e in doppel.events("env.failed") if e.data["env"] == env_name]
        assert "CloudFormation refused the stack" in failed.data["reason"]
        assert "InstanceType" in failed.data["reason"]
        # the compensation removed what the chain had made: the image and the RDS snapshot
        wait_for(lambda: not leftovers(env_name), 60, f"nothing of {env_name} left")
    finally:
        remove_env(doppel, env_name)
        doppel.close()


def test_expiry_backs_the_env_up_to_s3_then_deletes_everything_and_aws_s3_cp_reads_the_backup(
        aws_env, production_stack, tmp_path, capsys):
    bucket = f"doppel-it-backups-{uuid.uuid4().hex[:8]}"
    doppel = Doppel(tmp_path, backups_bucket=bucket, logs=[{"kind": "logs", "console": True}])
    env_name = unique_env("expire")
    try:
        doppel.request(env_name)
        assert doppel.settle(env_name).state == READY
        password = stack_parameters(env_name)["DbPassword"]

        # When it expires as its TTL would (`doppel env expire`): the real chain, nothing made by hand
        from doppel.cli import main
        config = tmp_path / "doppel.yaml"
        config.write_text(yaml.safe_dump(doppel.document))
        assert main(["--config", str(config), "env", "expire", env_name, "--timeout", "2m"]) == 0

        # Then it was backed up first, and nothing of it is left
        expired = doppel.app.registry.latest(env_name)
        (entry,) = doppel.app.backups.list(env_name)
        assert expired.state == "deleted" and entry.id in expired.reason and entry.reason == "expiry"
        wait_for(lambda: not leftovers(env_name), 60, f"nothing of {env_name} left")

        # Its instance's console output, read through EC2's API at teardown, is kept and printed after it is gone
        assert main(["--config", str(config), "env", "logs", env_name]) == 0
        printed = capsys.readouterr().out
        assert "console/Web.log" in printed and "BIOS-provided physical RAM map" in printed  # what moto's says

        # And the backup is read back by hand as docs/aws.md says: `aws s3 cp`, zstd, tar
        archive = tmp_path / "archive.tar.zst"
        subprocess.run(["aws", "s3", "cp", f"s3://{bucket}/{env_name}/{entry.id}/archive.tar.zst", str(archive)],
                       check=True, capture_output=True)
        with zstandard.open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        stack = next(v for k, v in files.items() if k.endswith("aws/stack.json"))
        assert f'"doppel-{env_name}"' in stack.decode()
        assert any(k.endswith("aws/template.json") for k in files)
        assert all(password.encode() not in body for body in files.values())
    finally:
        remove_env(doppel, env_name)
        doppel.close()
