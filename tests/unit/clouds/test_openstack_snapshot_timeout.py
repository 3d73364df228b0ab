"""A snapshot that never finishes fails the chain after snapshot_timeout_minutes (driver logic only).

The connection is a stand-in answering the three list calls the status check makes; the
real OpenStack run is in tests/integration/openstack.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from clouds.openstack import OpenStackDriver
from clouds.openstack.resources import TAG_COMPONENT
from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT

PRODUCTION = {"shop": {"driver": "openstack", "cloud": "c", "stack": "shop", "template": "/t.yaml",
                       "snapshot_timeout_minutes": 20}}


def cloud_with_volume_snapshot(status: str, age: timedelta):
    tags = {TAG_ENV: "dev", TAG_KEY: "k", TAG_PRODUCTION: "shop", TAG_SNAPSHOT: "snap-1", TAG_COMPONENT: "data"}
    snap = SimpleNamespace(id="vs-1", name="snap-1-data", status=status, size=1, metadata=tags,
                           created_at=(datetime.now(timezone.utc) - age).isoformat())
    return SimpleNamespace(image=SimpleNamespace(images=lambda: []),
                           block_storage=SimpleNamespace(snapshots=lambda details=True: [snap]))


@pytest.mark.parametrize("status, age, expected", [
    ("creating", timedelta(minutes=5), "IN_PROGRESS"),
    ("creating", timedelta(minutes=25), "FAILED"),
    ("available", timedelta(minutes=25), "COMPLETE"),
])
def test_an_unfinished_snapshot_fails_only_after_the_productions_timeout(status, age, expected):
    driver = OpenStackDriver(PRODUCTION, connect=lambda *_: None)
    found = driver._snapshot_now(cloud_with_volume_snapshot(status, age), "snap-1", expected=None)
    assert found.status == expected
    if expected == "FAILED":
        assert "snapshot_timeout_minutes is 20" in found.status_reason
        assert "snapshot of volume data is creating" in found.status_reason
