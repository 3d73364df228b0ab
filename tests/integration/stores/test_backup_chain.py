"""The backup and restore functions through the bus, to a real Swift (its own API, and S3 through s3api).

The store is chosen in doppel.yaml, as an operator would; the environment's
files and database rows come back identical in a new environment.
"""
import os
import sqlite3
from pathlib import Path

import pytest
from swift_service import AUTH_URL, KEY, S3_ENDPOINT, USER, drop_bucket, drop_swift_containers

from tests.flow.conftest import Shop, content_digest

pytestmark = pytest.mark.swift


def store_spec(kind: str, name: str) -> dict:
    if kind == "swift":
        return {"type": "swift", "container": name, "auth_url": AUTH_URL, "user": USER,
                "key_env": "DOPPEL_TEST_SWIFT_KEY", "segment_size": "1MiB"}
    return {"type": "s3", "bucket": name, "endpoint_url": S3_ENDPOINT, "access_key": USER,
            "secret_key_env": "DOPPEL_TEST_SWIFT_KEY", "part_size": "5MiB"}


@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_an_environment_backed_up_to_the_store_restores_identical_into_a_new_one(
        kind, swift_service, bucket_name, tmp_path, monkeypatch):
    monkeypatch.setenv("DOPPEL_TEST_SWIFT_KEY", KEY)
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    shop = Shop(tmp_path, backups={"store": store_spec(kind, bucket_name)})
    try:
        # Given an environment with data of its own, and files big enough for several segments
        shop.publish("env.requested", env="perf-test", production="shop")
        root = Path(shop.app.registry.living("perf-test").endpoints["root"])
        (root / "app" / "media.bin").write_bytes(os.urandom(7 * 1024 * 1024))
        with sqlite3.connect(root / "data/shop.db") as conn:
            conn.execute("INSERT INTO orders (customer_id, total_cents, created_at) VALUES (2, 777, '2026-11-22')")
        expected = content_digest(root)

        # When it is backed up, then restored into a new environment
        shop.publish("backup.due", env="perf-test", reason="manual")
        (done,) = shop.events("backup.done")
        assert shop.app.backups.store.name.startswith(kind)
        shop.publish("restore.requested", backup_id=done.data["backup_id"], env="perf-copy", production="shop")
        assert shop.events("restore.done")

        # Then it is an environment of its own: every file is identical but those configure rewrites for it
        # (its paths, fresh credentials) and the database, whose personal data is anonymised again with its own salt
        copy = shop.app.registry.living("perf-copy")
        assert copy is not None and copy.state == "ready"
        restored = Path(copy.endpoints["root"])
        own = {".env", "config/app.ini", "config/settings.json", "crontab", "data/shop.db"}
        got = content_digest(restored)
        assert {k: v for k, v in got.items() if k not in own} == {k: v for k, v in expected.items() if k not in own}
        assert got.keys() == expected.keys()
        with sqlite3.connect(restored / "data/shop.db") as conn:
            assert conn.execute("SELECT count(*) FROM orders WHERE total_cents = 777").fetchone() == (1,)
        assert f"{restored}/data/shop.db" in (restored / ".env").read_text()
        verified = shop.app.backups.verify(done.data["backup_id"])
        assert verified.ok, str(verified)
    finally:
        shop.app.close()
        drop_swift_containers(bucket_name, f"{bucket_name}_segments") if kind == "swift" else drop_bucket(bucket_name)
