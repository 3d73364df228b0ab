"""The backup archive on a real directory store: round trip, integrity failures, incomplete backups."""
from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
from datetime import datetime, timedelta, timezone

import pytest
import zstandard

from clouds.backups import (
    BackupError,
    BackupNotFound,
    IntegrityError,
    Manifest,
    find_backup,
    list_backups,
    remove_incomplete,
    restore,
    verify,
    write_backup,
)
from clouds.backups.layout import archive_key
from core.catalogue import Catalogue
from core.cloud import BackupSource
from tests.support.state_db import migrated_engine

from .environment import DATABASES, file_checksums, table_checksums


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_backup_restores_every_file_and_every_row(tmp_path, environment, store, compression):
    # Given an environment with files, a link, an excluded log directory and two databases
    before_files = file_checksums(environment.root, skip=DATABASES + ("logs",))
    before_rows = {name: table_checksums(environment.root / name) for name in DATABASES}
    reports = []

    # When it is backed up and restored into a new directory
    manifest = write_backup(store, "prod", environment, compression=compression,
                            progress=lambda done, rate: reports.append((done, rate)))
    restored = restore(store, manifest.backup_id, tmp_path / "restored")

    # Then every file, link and row is identical, the log is left out, and each database is one file again
    target = tmp_path / "restored"
    assert restored == manifest
    assert file_checksums(target, skip=DATABASES) == before_files
    assert {name: table_checksums(target / name) for name in DATABASES} == before_rows
    assert not (target / "logs").exists()
    assert not any(target.glob("data/*-wal")) or all(p.stat().st_size == 0 for p in target.glob("data/*-wal"))
    assert reports[-1][0] == manifest.uncompressed_size and reports[-1][1] > 0  # bytes read, of source_size
    assert manifest.archive_key == f"prod/{manifest.backup_id}/" + ("archive.tar.zst" if compression == "zstd"
                                                                     else "archive.tar.gz")


def test_manifest_describes_the_stored_stream_and_its_components(environment, store):
    manifest = write_backup(store, "prod", environment)

    stored = (store.root / manifest.archive_key).read_bytes()
    raw = json.loads((store.root / f"prod/{manifest.backup_id}/manifest.json").read_bytes())
    assert raw["archive"] == {"key": manifest.archive_key, "compression": "zstd", "size": len(stored),
                              "sha256": hashlib.sha256(stored).hexdigest()}
    assert raw["format"] == 1 and raw["env"] == "prod" and raw["backup_id"] == manifest.backup_id
    kinds = {c["name"]: c for c in raw["components"]}
    assert kinds["files"]["count"] == 3          # index.php, logo.bin, config.ini; not the log
    assert kinds["data/app.db"]["journal_mode"] == "wal"
    assert kinds["data/app.db"]["files"] == ["data/app.db", "data/app.db-wal"]
    assert kinds["data/audit.db"]["journal_mode"] == "delete"
    assert raw["uncompressed_size"] > raw["archive"]["size"] > 0
    # the archive is a plain zstd-compressed tar: any tool can read it (as the zstd CLI does, across its
    # frames: the random logo is stored in frames of its own)
    names = tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().decompressobj(
        read_across_frames=True).decompress(stored)), mode="r:").getnames()
    assert "app/static/logo.bin" in names and "data/app.db" in names and "logs/access.log" not in names


def test_backup_ids_sort_by_time_and_list_shows_complete_backups_only(environment, store):
    first = write_backup(store, "prod", environment, now=datetime(2026, 11, 21, 3, 15, tzinfo=timezone.utc))
    second = write_backup(store, "prod", environment, now=datetime(2026, 11, 22, 3, 15, tzinfo=timezone.utc))
    other = write_backup(store, "staging", environment)
    store.delete(second.key)                      # as if the process died before writing the manifest

    assert first.backup_id.startswith("20261121T031500Z-")
    assert [m.backup_id for m in list_backups(store, "prod")] == [first.backup_id]
    assert {m.backup_id for m in list_backups(store)} == {first.backup_id, other.backup_id}
    with pytest.raises(BackupNotFound, match=second.backup_id):
        find_backup(store, second.backup_id)
    assert find_backup(store, first.backup_id) == first


def test_two_backups_in_one_second_sort_by_when_they_started_not_by_id(tmp_path, environment, store):
    # Given two backups started in the same second, the later one with an id that sorts first
    second = datetime(2026, 11, 22, 8, 34, 36, tzinfo=timezone.utc)
    earlier = write_backup(store, "prod", environment, now=second.replace(microsecond=100),
                           backup_id="20261122T083436Z-fc41a9")
    later = write_backup(store, "prod", environment, now=second.replace(microsecond=900),
                         backup_id="20261122T083436Z-fb37fafd")

    # Then the store's listing and the catalogue built from it both call the later one the newest
    assert [m.backup_id for m in list_backups(store, "prod")] == [earlier.backup_id, later.backup_id]
    catalogue = Catalogue(migrated_engine(f"sqlite:///{tmp_path / 'catalogue.db'}"))
    for manifest in reversed(list_backups(store, "prod")):
        catalogue.record(manifest, store.name, reason="test")
    assert catalogue.newest("prod").id == later.backup_id
    assert find_backup(store, later.backup_id).created == later.created


@pytest.mark.parametrize("damage", ["flip one byte", "truncate"])
def test_verify_fails_naming_the_backup_and_the_mismatch(environment, store, damage):
    # Given a good backup whose stored archive is then damaged
    manifest = write_backup(store, "prod", environment)
    assert verify(store, manifest.backup_id).ok
    path = store.root / manifest.archive_key
    data = bytearray(path.read_bytes())
    if damage == "flip one byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) - 1000]
    path.write_bytes(bytes(data))

    # When it is verified
    result = verify(store, manifest.backup_id)

    # Then it fails, and the message names the backup and what does not match
    assert not result.ok and not result.archive_ok
    message = str(result)
    assert manifest.backup_id in message and "prod" in message
    assert f"sha256 expected {manifest.sha256}, got " in message
    if damage == "truncate":
        assert f"size expected {manifest.size} bytes, got {manifest.size - 1000}" in message


def test_restore_of_a_damaged_archive_leaves_no_target(tmp_path, environment, store):
    manifest = write_backup(store, "prod", environment)
    path = store.root / manifest.archive_key
    path.write_bytes(path.read_bytes()[:-10])

    with pytest.raises(IntegrityError, match=f"backup {manifest.backup_id} of prod"):
        restore(store, manifest, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert not list(tmp_path.glob(".restored.restoring-*"))


def test_verify_reports_a_database_that_fails_integrity_check(tmp_path, store):
    # Given a backup of a database whose file is damaged on disk (a few pages overwritten)
    root = tmp_path / "prod"
    (root / "data").mkdir(parents=True)
    with sqlite3.connect(root / "data" / "app.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("CREATE INDEX t_v ON t (v)")
        db.executemany("INSERT INTO t (v) VALUES (?)", [(f"value {i}" * 5,) for i in range(3000)])
    with open(root / "data" / "app.db", "r+b") as f:
        f.seek(4096 * 5)
        f.write(os.urandom(4096 * 3))
    manifest = write_backup(store, "prod", BackupSource(root=root, databases=("data/app.db",)))

    result = verify(store, manifest)

    assert result.archive_ok and not result.ok
    assert result.databases["data/app.db"] != "ok"
    assert f"backup {manifest.backup_id} of prod: database data/app.db fails PRAGMA integrity_check" in str(result)


def test_restore_refuses_an_archive_with_a_path_outside_the_target(tmp_path, store):
    # Given a backup whose archive (checksum and all) holds ../escape.txt
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    compressed = zstandard.ZstdCompressor().compress(evil.getvalue())
    backup_id = "20261122T031500Z-abcdef"
    key = archive_key("prod", backup_id, "zstd")
    store.put_bytes(key, compressed)
    manifest = Manifest(backup_id=backup_id, env="prod", created=datetime.now(timezone.utc),
                        completed=datetime.now(timezone.utc), archive_key=key, compression="zstd",
                        size=len(compressed), sha256=hashlib.sha256(compressed).hexdigest(),
                        uncompressed_size=len(evil.getvalue()))
    store.put_bytes(manifest.key, manifest.to_json())

    with pytest.raises(IntegrityError, match="outside the target"):
        restore(store, backup_id, tmp_path / "sub" / "restored")
    assert not (tmp_path / "sub" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_failed_backup_stores_nothing_and_names_env_and_backup(tmp_path, environment, store):
    # Given a source whose listed database is missing: the producer fails mid-archive
    broken = BackupSource(root=environment.root, databases=("data/app.db", "data/gone.db"))

    with pytest.raises(BackupError, match=r"backup \S+ of prod to local:.* data/gone.db"):
        write_backup(store, "prod", broken)
    assert store.list() == []
    assert list((store.root / ".incoming").iterdir()) == []


def test_restore_refuses_a_target_that_is_not_empty(tmp_path, environment, store):
    manifest = write_backup(store, "prod", environment)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        restore(store, manifest, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_remove_incomplete_waits_for_the_grace_period(environment, store):
    # Given a complete backup, and one whose manifest never got written
    kept = write_backup(store, "prod", environment)
    dead = write_backup(store, "prod", environment)
    store.delete(dead.key)
    now = datetime.now(timezone.utc)

    # When cleanup runs within the grace period, nothing goes; after it, the orphan archive goes
    assert remove_incomplete(store, env="prod", grace=timedelta(hours=1), now=now) == []
    removed = remove_incomplete(store, env="prod", grace=timedelta(hours=1), now=now + timedelta(hours=2))

    assert removed == [dead.archive_key]
    assert [o.key for o in store.list("prod/")] == [kept.archive_key, kept.key]
    assert verify(store, kept.backup_id).ok


def test_a_manifest_found_under_another_backup_key_is_not_listed(environment, store):
    manifest = write_backup(store, "prod", environment)
    store.put_bytes("prod/20260101T000000Z-000000/manifest.json", manifest.to_json())
    assert [m.backup_id for m in list_backups(store, "prod")] == [manifest.backup_id]


def test_backup_of_a_tree_that_is_not_there_fails_clearly(tmp_path, store):
    with pytest.raises(BackupError, match="is not a directory"):
        write_backup(store, "prod", BackupSource(root=tmp_path / "nowhere"))
    assert store.list() == []
