"""A real Swift with s3api for the store and backup tests, started once per session by tests/services/swift.sh.

Each test gets a container (Swift) or bucket (S3) of its own, emptied and removed afterwards.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import openstack
import pytest
from swift_service import (
    AUTH_URL,
    KEY,
    ROOT,
    S3_ENDPOINT,
    USER,
    drop_bucket,
    drop_swift_containers,
    make_s3_store,
    make_swift_store,
)

from clouds.stores import make_store


@pytest.fixture(scope="session")
def swift_service() -> dict:
    """Swift + s3api on 127.0.0.1:8080, from the project's own script (reused when already running)."""
    started = time.monotonic()
    subprocess.run(["bash", str(ROOT / "tests/services/swift.sh")], check=True,
                   stdout=None if os.environ.get("CI") else subprocess.DEVNULL)
    return {"auth_url": AUTH_URL, "s3_endpoint": S3_ENDPOINT, "user": USER, "key": KEY,
            "bring_up_seconds": time.monotonic() - started}


@pytest.fixture
def bucket_name() -> str:
    """Valid as a Swift container and as an S3 bucket name."""
    return f"doppel-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def swift_store(swift_service, bucket_name):
    yield make_swift_store(bucket_name)
    drop_swift_containers(bucket_name, f"{bucket_name}_segments")


@pytest.fixture
def s3_store(swift_service, bucket_name):
    yield make_s3_store(bucket_name)
    drop_bucket(bucket_name)


@pytest.fixture(params=["swift", "s3"])
def store(request):
    """The same test through Swift's own API (SLO) and through its S3 API (multipart)."""
    return request.getfixturevalue(f"{request.param}_store")


CLOUDS_YAML = "/etc/doppel-test/clouds.yaml"     # where tests/services/openstack.sh writes it
KEYSTONE_CLOUD = "doppel-test"


@pytest.fixture(scope="session")
def keystone_cloud(swift_service, openstack_cloud) -> str:
    """A Keystone and a Swift proxy behind it (over swift.sh's servers), from tests/services/openstack.sh (started
    once a session by the `openstack_cloud` fixture of tests/integration/conftest.py)."""
    return KEYSTONE_CLOUD


@pytest.fixture
def keystone_swift_store(keystone_cloud, bucket_name, monkeypatch):
    """A Swift store authenticated by Keystone from clouds.yaml: the constructor path production uses."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", CLOUDS_YAML)
    store = make_store({"type": "swift", "container": bucket_name, "cloud": keystone_cloud,
                        "segment_size": "1MiB"})
    yield store
    for info in store.list():
        store.delete(info.key)
    cloud = openstack.connect(cloud=keystone_cloud)
    for container in (bucket_name, f"{bucket_name}_segments"):
        cloud.object_store.delete_container(container, ignore_missing=True)
