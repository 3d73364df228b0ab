"""A production's PostgreSQL database backed up into the archive in pg_dump's format, restored, verified, and
restored by hand as docs/restore-by-hand.md says, on a real server."""
from __future__ import annotations

import hashlib
import io
import os
import random
import re
import subprocess
import tarfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from clouds.backups import restore, verify, write_backup
from clouds.databases.servers import env_database
from clouds.stores.local import LocalStore
from core.registry import READY
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import PASSWORD_ENV, databases

pytestmark = pytest.mark.postgresql
ROOT = Path(__file__).resolve().parents[3]
TABLES = ("store", "customer", "address", "staff", "rental", "payment", "ledger")


def rows_as_text(shop, database: str) -> dict[str, str]:
    """Every table's rows, in key order, as PostgreSQL prints them: equal text means equal data."""
    return {table: "\n".join(row[0] for row in shop.query(f"SELECT t::text FROM {table} t ORDER BY 1", database))
            for table in TABLES}


def test_a_backup_restores_to_the_same_rows_and_verifies(pg_shop, tmp_path):
    shop = pg_shop()
    driver, store = shop.app.cloud, LocalStore(tmp_path / "store")

    manifest = write_backup(store, "shop", driver.backup_source("shop"))

    [dumped] = manifest.server_databases
    assert dumped.name == "rentals" and dumped.kind == "postgresql" and dumped.tables["public.customer"] == 60
    assert dumped.files and all(name.startswith("databases/rentals.pgdump.part-") for name in dumped.files)
    assert "password" not in str(manifest.to_json()).replace("password_env", "")
    target = driver.restore_target("restored", production="shop")
    restore(store, manifest, target, databases=driver.database_targets("restored", "shop"))
    assert rows_as_text(shop, env_database("restored", "rentals")) == rows_as_text(shop, shop.database)
    assert (target / "data" / "shop.db").is_file()  # the files came back too

    made_before = len(shop.created)
    result = verify(store, manifest)
    assert result.ok, result.problems
    assert result.databases["rentals"] == "ok"
    scratch = set(shop.created[made_before:])
    assert scratch and not scratch & databases(shop.server)  # the scratch database is gone

    # A dump that restores with fewer rows than were counted at backup time does not verify
    counted = replace(dumped, tables={**dumped.tables, "public.customer": 61})
    short = replace(manifest, components=tuple(counted if c is dumped else c for c in manifest.components))
    result = verify(store, short)
    assert not result.ok and "database rentals: table public.customer: 60 rows, 61 at backup time" in str(result)

    driver.delete_stack("restored")
    assert env_database("restored", "rentals") not in databases(shop.server)


def test_a_corrupted_dump_fails_verify_naming_the_database(pg_shop, tmp_path):
    shop = pg_shop()
    store = LocalStore(tmp_path / "store")
    manifest = write_backup(store, "shop", shop.app.cloud.backup_source("shop"))
    # The dump cut in half, in an archive whose checksum is made to match: only restoring it can tell
    # (read across its frames, as the zstd CLI reads it: a stretch that did not compress is a frame of its own)
    plain = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(
        store.get_bytes(manifest.archive_key))
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(plain)) as old, tarfile.open(fileobj=out, mode="w") as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else None
            if member.name.startswith("databases/rentals.pgdump"):
                data = data[:len(data) // 2]
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    archive = zstandard.ZstdCompressor().compress(out.getvalue())
    store.put_bytes(manifest.archive_key, archive)
    store.put_bytes(manifest.key, replace(manifest, sha256=hashlib.sha256(archive).hexdigest(),
                                          size=len(archive)).to_json())
    made_before = len(shop.created)

    result = verify(store, manifest.backup_id, env="shop")

    assert not result.ok and result.archive_ok
    assert "database rentals does not restore" in str(result), result.problems
    scratch = set(shop.created[made_before:])
    assert scratch and not scratch & databases(shop.server)  # the half-restored scratch database is gone


def doc_block(title: str) -> str:
    text = (ROOT / "docs" / "restore-by-hand.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        if block.startswith(f"# {title}\n"):
            return block
    raise AssertionError(f"docs/restore-by-hand.md has no sh block starting with '# {title}'")


def test_the_by_hand_restore_in_the_docs_works_as_written(pg_shop, tmp_path):
    shop = pg_shop()
    store = LocalStore(tmp_path / "store")
    manifest = write_backup(store, "shop", shop.app.cloud.backup_source("shop"))
    archive = tmp_path / "archive.tar.zst"
    archive.write_bytes(store.get_bytes(manifest.archive_key))
    newdb = f"byhand_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ARCHIVE": str(archive), "NAME": "rentals", "NEWDB": newdb, "PGHOST": "127.0.0.1",
           "PGPORT": "5432", "PGUSER": "doppel", "PGPASSWORD": os.environ[PASSWORD_ENV]}

    done = subprocess.run(["bash", "-c", doc_block("by-hand restore of a PostgreSQL database")], env=env,
                          capture_output=True, text=True, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert rows_as_text(shop, newdb) == rows_as_text(shop, shop.database)
    [dumped] = manifest.server_databases
    assert {f"{table} {count}" for table, count in dumped.tables.items()} <= set(done.stdout.split("\n"))


def test_an_environment_of_an_older_backup_holds_that_backups_rows_anonymised(pg_shop):
    shop = pg_shop()
    shop.publish("backup.due", env="shop", reason="scheduled")
    [done] = shop.events("backup.done")
    with shop.connect() as conn:  # production moves on after the backup
        for rental in range(5000, 5010):
            rental_shop.add_rental(conn.cursor().execute, rental, random.Random(rental), 60)
    today = shop.query("SELECT rentals FROM ledger")[0][0]

    shop.publish("env.requested", env="last-week", production="shop", data_version=done.data["backup_id"])

    env = shop.app.registry.living("last-week")
    assert env is not None and env.state == READY, shop.app.registry.latest("last-week").reason
    database = env.endpoints["db_rentals_database"]
    assert shop.query("SELECT rentals FROM ledger", database)[0][0] == today - 10 == 120
    assert shop.query("SELECT count(*) FROM rental", database)[0][0] == 120
    production_emails = {row[0] for row in shop.query("SELECT email FROM customer")}
    assert not production_emails & {row[0] for row in shop.query("SELECT email FROM customer", database)}


def test_a_drill_restores_the_database_into_its_scratch_environment_verifies_and_drops_it(pg_shop):
    # Breaks caught: the drill's restore given no place for the server databases (every such drill failed:
    # "holds database rentals, which the target environment has no place for"); the scratch environment made
    # without its production, so its databases are left on the server after the drill
    from functions.drill import scratch_env
    shop = pg_shop()
    shop.publish("backup.due", env="shop", reason="scheduled")

    due = shop.publish("drill.due", production="shop")

    (done,) = shop.events("drill.done")
    (drill,) = shop.app.dr_states.drills("shop")
    assert done.data["verified"] is True, drill.detail
    scratch = scratch_env("shop", due)
    assert env_database(scratch, "rentals") in shop.created  # restored into the scratch environment's own
    assert shop.left_behind(scratch) == []
