"""The Swift store authenticated by Keystone (a clouds.yaml cloud), against a real Keystone and Swift.

Needs tests/services/openstack.sh (started by the `keystone_cloud` fixture): its
second Swift proxy, on :8081, runs over the servers of tests/services/swift.sh.
"""
from __future__ import annotations

import os

import pytest
from swift_service import MiB

from clouds.backups import list_backups, remove_incomplete, restore, verify, write_backup
from core.cloud import BackupSource
from tests.unit.backups.environment import file_checksums

pytestmark = [pytest.mark.swift, pytest.mark.openstack]


def test_backup_round_trip_with_keystone_auth(tmp_path, keystone_swift_store):
    # Given an environment that needs several SLO segments
    source = tmp_path / "prod"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(3 * MiB))
    (source / "index.html").write_text("shop")

    # When it is backed up through a store that authenticates with Keystone, and restored
    manifest = write_backup(keystone_swift_store, "prod", BackupSource(root=source))
    restore(keystone_swift_store, manifest.backup_id, tmp_path / "clone")

    # Then the files are identical, the backup is listed and verifies, and nothing is left to clean
    assert file_checksums(tmp_path / "clone") == file_checksums(source)
    assert [m.backup_id for m in list_backups(keystone_swift_store, "prod")] == [manifest.backup_id]
    assert verify(keystone_swift_store, manifest).ok
    assert remove_incomplete(keystone_swift_store, env="prod") == []
