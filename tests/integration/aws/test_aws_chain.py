"""The environment chain on the aws driver, against moto's server: expiry (backup to S3, teardown, the console kept).

Clone, replay, a refused stack and reap are stated once for every driver in tests/integration/clouds.
"""
from __future__ import annotations

import subprocess
import tarfile
import uuid

import pytest
import yaml
import zstandard

from core.registry import READY
from tests.integration.aws.conftest import (
    Doppel,
    leftovers,
    stack_parameters,
    unique_env,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.aws


def remove_env(doppel, env: str) -> None:
    doppel.remove(env, leftovers)


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
