"""A production's MariaDB database backed up into the archive as mariadb-dump SQL, restored, verified, and restored by
hand as docs/restore-by-hand.md says, on a real server."""
from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import tarfile
import uuid
from dataclasses import replace

import pytest
import zstandard

from clouds.backups import restore, verify, write_backup
from clouds.databases.servers import env_database
from clouds.stores.local import LocalStore
from core.registry import READY
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import MARIADB_PASSWORD_ENV, databases
from tests.integration.databases.test_postgresql_backup import doc_block

pytestmark = pytest.mark.mariadb
TABLES = ("store", "customer", "address", "staff", "rental", "payment", "ledger")


def rows(shop, database: str) -> dict[str, list[tuple]]:
    """Every table's rows, in key order, as the server returns them: equal lists mean equal data."""
    return {table: shop.query(f"SELECT * FROM {table} ORDER BY 1", database) for table in TABLES}


def test_a_backup_restores_to_the_same_rows_and_verifies(maria_shop, tmp_path):
    shop = maria_shop()
    driver, store = shop.app.cloud, LocalStore(tmp_path / "store")

    manifest = write_backup(store, "shop", driver.backup_source("shop"))

    [dumped] = manifest.server_databases
    assert dumped.name == "rentals" and dumped.kind == "mariadb"
    assert dumped.tables == {"store": 1, "customer": 60, "address": 60, "staff": 5, "rental": 120, "payment": 120,
                             "ledger": 1}
    assert dumped.files and all(name.startswith("databases/rentals.sql.part-") for name in dumped.files)
    assert "password" not in str(manifest.to_json()).replace("password_env", "")
    target = driver.restore_target("restored", production="shop")
    restore(store, manifest, target, databases=driver.database_targets("restored", "shop"))
    assert rows(shop, env_database("restored", "rentals")) == rows(shop, shop.database)
    assert (target / "data" / "shop.db").is_file()  # the files came back too

    before = databases(shop.server)
    result = verify(store, manifest)
    assert result.ok, result.problems
    assert result.databases["rentals"] == "ok"
    assert databases(shop.server) == before  # the scratch database is gone

    # A dump that restores with fewer rows than were counted at backup time does not verify
    counted = replace(dumped, tables={**dumped.tables, "customer": 61})
    short = replace(manifest, components=tuple(counted if c is dumped else c for c in manifest.components))
    result = verify(store, short)
    assert not result.ok and "database rentals: table customer: 60 rows, 61 at backup time" in str(result)
    assert databases(shop.server) == before

    driver.delete_stack("restored")
    assert env_database("restored", "rentals") not in databases(shop.server)


def _rewrite_dump(store, manifest, change) -> None:
    """The archive with the dump's bytes changed by `change`, and a manifest whose checksum matches it: only
    restoring it can tell."""
    # Read across its frames, as the zstd CLI reads it: a stretch that did not compress is a frame of its own
    plain = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(
        store.get_bytes(manifest.archive_key))
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(plain)) as old, tarfile.open(fileobj=out, mode="w") as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else None
            if member.name.startswith("databases/rentals.sql"):
                data = change(data)
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    archive = zstandard.ZstdCompressor().compress(out.getvalue())
    store.put_bytes(manifest.archive_key, archive)
    store.put_bytes(manifest.key, replace(manifest, sha256=hashlib.sha256(archive).hexdigest(),
                                          size=len(archive)).to_json())


@pytest.mark.parametrize("cut", ["in the middle of a row", "at the end of a statement"])
def test_a_corrupted_dump_fails_verify_naming_the_database(maria_shop, tmp_path, cut):
    shop = maria_shop()
    store = LocalStore(tmp_path / "store")
    manifest = write_backup(store, "shop", shop.app.cloud.backup_source("shop"))
    if cut == "in the middle of a row":
        _rewrite_dump(store, manifest, lambda data: data[:len(data) // 2])
    else:  # a whole statement's worth, so the client sees nothing wrong: the dump's missing last line tells
        _rewrite_dump(store, manifest, lambda data: data[:data.rindex(b";\n", 0, len(data) // 2) + 2])
    before = databases(shop.server)

    result = verify(store, manifest.backup_id, env="shop")

    assert not result.ok and result.archive_ok
    assert "database rentals does not restore" in str(result), result.problems
    assert databases(shop.server) == before


def test_the_by_hand_restore_in_the_docs_works_as_written(maria_shop, tmp_path):
    shop = maria_shop()
    store = LocalStore(tmp_path / "store")
    manifest = write_backup(store, "shop", shop.app.cloud.backup_source("shop"))
    archive = tmp_path / "archive.tar.zst"
    archive.write_bytes(store.get_bytes(manifest.archive_key))
    newdb = f"byhand_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ARCHIVE": str(archive), "NAME": "rentals", "NEWDB": newdb, "MYSQL_HOST": "127.0.0.1",
           "MYSQL_TCP_PORT": "3306", "DBUSER": "doppel", "MYSQL_PWD": os.environ[MARIADB_PASSWORD_ENV]}

    done = subprocess.run(["bash", "-c", doc_block("by-hand restore of a MariaDB database")], env=env,
                          capture_output=True, text=True, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert rows(shop, newdb) == rows(shop, shop.database)
    [dumped] = manifest.server_databases
    assert {f"{table} {count}" for table, count in dumped.tables.items()} <= set(done.stdout.split("\n"))


def test_an_environment_of_an_older_backup_holds_that_backups_rows_anonymised(maria_shop):
    shop = maria_shop()
    shop.publish("backup.due", env="shop", reason="scheduled")
    [done] = shop.events("backup.done")
    with shop.connect() as conn:  # production moves on after the backup
        for rental in range(5000, 5010):
            rental_shop.add_rental(conn.cursor().execute, rental, random.Random(rental), 60)
        conn.commit()
    today = shop.query("SELECT rentals FROM ledger")[0][0]

    shop.publish("env.requested", env="last-week", production="shop", data_version=done.data["backup_id"])

    env = shop.app.registry.living("last-week")
    assert env is not None and env.state == READY, shop.app.registry.latest("last-week").reason
    database = env.endpoints["db_rentals_database"]
    assert shop.query("SELECT rentals FROM ledger", database)[0][0] == today - 10 == 120
    assert shop.query("SELECT count(*) FROM rental", database)[0][0] == 120
    production_emails = {row[0] for row in shop.query("SELECT email FROM customer")}
    assert not production_emails & {row[0] for row in shop.query("SELECT email FROM customer", database)}
