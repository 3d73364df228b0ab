"""Stores and backups against a real Swift (SLO) and its real S3 API (multipart), started by tests/services/swift.sh."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from swift_service import (
    AUTH_URL,
    KEY,
    ROOT,
    S3_ENDPOINT,
    S3_PART,
    SWIFT_SEGMENT,
    USER,
    MiB,
    make_s3_store,
    make_swift_store,
    s3_client,
    swift_connection,
)

from clouds.backups import RetentionPolicy, list_backups, prune, remove_incomplete, restore, verify, write_backup
from core.cloud import BackupSource
from core.stores import ObjectMissing, StoreError
from tests.support.waiting import wait_for
from tests.unit.backups.environment import DATABASES, file_checksums, make_environment, table_checksums

pytestmark = pytest.mark.swift
HERE = Path(__file__).resolve().parent


# -- raw views of the server, to see what the stores left behind ------------------------------------

def swift_segments(container: str) -> list[str]:
    try:
        return [o["name"] for o in swift_connection().get_container(f"{container}_segments", full_listing=True)[1]]
    except Exception:  # noqa: BLE001 - no segments container: no segments
        return []


def s3_pending_uploads(bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", ())]


def leftovers(store) -> list[str]:
    """What an interrupted upload can leave: Swift segments, or pending S3 multipart uploads."""
    return swift_segments(store.container) if store.name.startswith("swift:") else s3_pending_uploads(store.bucket)


# -- objects --------------------------------------------------------------------------------------------

def test_swift_large_object_goes_up_in_segments_and_comes_back_whole(swift_store):
    data = os.urandom(5 * SWIFT_SEGMENT + 12345)
    seen = []

    info = swift_store.put_stream("prod/x/archive.tar.zst", io.BytesIO(data), progress=seen.append)

    assert info.size == len(data) and seen[-1] == len(data)
    segments = swift_segments(swift_store.container)
    assert len(segments) == 6 and all(re.match(r"prod/x/archive.tar.zst/doppel-\d{8}T\d{6}Z-[0-9a-f]{8}/\d{8}$", s)
                                      for s in segments)
    headers = swift_connection().head_object(swift_store.container, "prod/x/archive.tar.zst")
    assert headers["x-static-large-object"] == "True"
    assert b"".join(swift_store.get_stream("prod/x/archive.tar.zst")) == data
    assert [(o.key, o.size) for o in swift_store.list("prod/")] == [("prod/x/archive.tar.zst", len(data))]

    swift_store.delete("prod/x/archive.tar.zst")
    assert swift_store.list() == [] and swift_segments(swift_store.container) == []
    assert swift_store.cleanup_orphans() == []


def test_swift_object_beyond_one_manifest_nests_manifests(swift_store):
    swift_store.max_manifest_segments = 3          # Swift's real limit is 1000; same code path
    data = os.urandom(8 * SWIFT_SEGMENT + 1)

    swift_store.put_stream("prod/x/big", io.BytesIO(data))

    assert b"".join(swift_store.get_stream("prod/x/big")) == data
    assert sum("/manifest-" in s for s in swift_segments(swift_store.container)) == 3
    swift_store.delete("prod/x/big")
    assert swift_segments(swift_store.container) == []


@pytest.mark.parametrize("damage", ["shortened", "deleted"])
def test_swift_read_of_a_damaged_segment_fails_naming_it(swift_store, damage):
    # Given a segmented object whose third segment is shortened, or gone, behind the store's back
    data = os.urandom(4 * SWIFT_SEGMENT)
    swift_store.put_stream("prod/x/archive.tar.zst", io.BytesIO(data))
    segment = sorted(swift_segments(swift_store.container))[2]
    if damage == "shortened":
        swift_connection().put_object(f"{swift_store.container}_segments", segment, os.urandom(100))
    else:
        swift_connection().delete_object(f"{swift_store.container}_segments", segment)

    # When it is read, then the read fails at that segment, naming it, after the intact ones came back
    received = bytearray()
    with pytest.raises((StoreError, ObjectMissing), match=re.escape(segment)):
        for chunk in swift_store.get_stream("prod/x/archive.tar.zst"):
            received += chunk
    assert bytes(received) == data[:len(received)] and len(received) <= 2 * SWIFT_SEGMENT


def test_s3_large_object_goes_up_in_parts_and_comes_back_whole(s3_store):
    data = os.urandom(2 * S3_PART + 777)

    info = s3_store.put_stream("prod/x/archive.tar.zst", io.BytesIO(data))

    assert info.size == len(data) and info.etag.endswith("-3")      # three parts, completed as one object
    assert b"".join(s3_store.get_stream("prod/x/archive.tar.zst")) == data
    assert s3_pending_uploads(s3_store.bucket) == []
    s3_store.delete("prod/x/archive.tar.zst")
    with pytest.raises(ObjectMissing):
        s3_store.get_bytes("prod/x/archive.tar.zst")


def test_s3_empty_and_one_part_objects_come_back_whole(s3_store):
    s3_store.put_bytes("prod/x/empty", b"")
    s3_store.put_bytes("prod/x/small", b"doppel" * 1000)

    assert b"".join(s3_store.get_stream("prod/x/empty")) == b""
    assert b"".join(s3_store.get_stream("prod/x/small")) == b"doppel" * 1000


@pytest.mark.parametrize("api", ["swift", "s3"])
def test_wrong_credentials_fail_naming_the_store_but_not_the_secret(swift_service, bucket_name, api):
    secret = "not-the-key-0d5e"
    store = (make_swift_store(bucket_name, key=secret) if api == "swift"
             else make_s3_store(bucket_name, secret_key=secret))
    with pytest.raises(StoreError) as error:
        store.put_bytes("prod/x/manifest.json", b"{}")
    assert store.name in str(error.value) and secret not in str(error.value)
    assert secret not in repr(store)


# -- backups ------------------------------------------------------------------------------------------

def test_backup_restores_every_file_and_row_through_each_api(tmp_path, store):
    # Given an environment big enough to need several segments (incompressible 6 MiB) and two databases
    source = make_environment(tmp_path / "prod", rows=2000, blob_bytes=6 * MiB)
    files_before = file_checksums(source.root, skip=DATABASES + ("logs",))
    rows_before = {name: table_checksums(source.root / name) for name in DATABASES}

    # When it is backed up and restored into a new environment's directory
    manifest = write_backup(store, "prod", source)
    restore(store, manifest.backup_id, tmp_path / "clone")

    # Then every file and every row is identical, and the backup is listed and verifies
    assert file_checksums(tmp_path / "clone", skip=DATABASES) == files_before
    assert {name: table_checksums(tmp_path / "clone" / name) for name in DATABASES} == rows_before
    assert [m.backup_id for m in list_backups(store, "prod")] == [manifest.backup_id]
    assert manifest.size > 6 * MiB
    assert store.cleanup_orphans() == []                    # a good backup leaves nothing to clean
    assert verify(store, manifest.backup_id).ok


def test_killed_upload_leaves_no_complete_backup_and_cleanup_removes_its_pieces(tmp_path, store):
    # Given a backup uploading in a separate process
    source = tmp_path / "prod"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(16 * MiB))
    kind, bucket = store.name.split(":", 1)
    worker = subprocess.Popen([sys.executable, str(HERE / "interrupted_backup.py"), kind, bucket, str(source), "prod"],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                              text=True)
    one_piece = SWIFT_SEGMENT if kind == "swift" else S3_PART

    # When it is killed with SIGKILL once pieces of it are stored (progress counts bytes read, which run ahead of
    # what the server holds: wait for the server to hold a piece)
    try:
        _wait_for_upload(worker, at_least=one_piece)
        wait_for(lambda: leftovers(store), 60, "a piece of the upload to be stored")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    # Then no backup shows as complete, though pieces are on the server
    assert list_backups(store, "prod") == []
    assert leftovers(store) != []

    # and cleanup removes the pieces (the grace period is 0 for this test's store; s3api's times are whole
    # seconds rounded up, so a part stored a moment ago is "in the future" for up to a second: cleanup is run
    # until the server holds nothing of it, not after a sleep)
    removed = []
    wait_for(lambda: removed.extend(remove_incomplete(store, env="prod", grace=timedelta(0))) or not leftovers(store),
             30, "cleanup to remove the pieces", explain=lambda: str(leftovers(store)))
    assert removed and store.list("prod/") == []

    # and the retried backup completes and restores
    manifest = write_backup(store, "prod", BackupSource(root=source))
    assert [m.backup_id for m in list_backups(store, "prod")] == [manifest.backup_id]
    restore(store, manifest, tmp_path / "clone")
    assert file_checksums(tmp_path / "clone") == file_checksums(source)


def _wait_for_upload(worker: subprocess.Popen, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for line in worker.stdout:
        if line.startswith("finished"):
            raise AssertionError("the backup finished before it could be killed; slow it down")
        if line.startswith("uploaded") and int(line.split()[1]) >= at_least:
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"the backup subprocess never reported {at_least} bytes uploaded "
                         f"(exit code {worker.poll()})")


def test_verify_catches_a_segment_replaced_behind_swifts_back(tmp_path, swift_store):
    # Given a multi-segment backup, one of whose segments is overwritten with other bytes of the same size
    source = tmp_path / "prod"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(3 * MiB))
    manifest = write_backup(swift_store, "prod", BackupSource(root=source))
    segment = sorted(swift_segments(swift_store.container))[1]
    swift_connection().put_object(f"{swift_store.container}_segments", segment, os.urandom(SWIFT_SEGMENT))

    # When it is verified, then it fails, naming the backup
    result = verify(swift_store, manifest.backup_id)
    assert not result.ok
    assert f"backup {manifest.backup_id} of prod" in str(result) and "sha256 expected" in str(result)


# -- retention ----------------------------------------------------------------------------------------

def test_prune_on_swift_keeps_exactly_the_policy_set_over_a_year(tmp_path, swift_store):
    # Given a backup each day of 2025 at 03:15 UTC (written in parallel, dated by `now`), one proven by a drill
    source = tmp_path / "prod"
    source.mkdir()
    (source / "index.html").write_text("shop")
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    with ThreadPoolExecutor(8) as pool:
        manifests = list(pool.map(lambda d: write_backup(
            swift_store, "prod", BackupSource(root=source),
            now=datetime(d.year, d.month, d.day, 3, 15, tzinfo=timezone.utc)), days))
    verified = {manifests[days.index(date(2025, 6, 15))].backup_id}
    policy = RetentionPolicy(keep_last=3, daily=7, weekly=4, monthly=6)

    # When prune runs at noon on Wednesday 31 December 2025
    result = prune(swift_store, "prod", policy, now=datetime(2025, 12, 31, 12, 0, tzinfo=timezone.utc),
                   verified=verified)

    # Then what is left in Swift is exactly the set read off a calendar (as in the unit test):
    # 25..31 Dec daily (keep_last and 2026-W01, W52 inside), Sun 14 and 21 Dec (W50, W51),
    # the last day of Jul..Nov (monthly; December's is the 31st), 15 June (newest verified)
    expected = ({date(2025, 12, d) for d in range(25, 32)} | {date(2025, 12, 14), date(2025, 12, 21)}
                | {date(2025, 7, 31), date(2025, 8, 31), date(2025, 9, 30), date(2025, 10, 31), date(2025, 11, 30)}
                | {date(2025, 6, 15)})
    left = list_backups(swift_store, "prod")
    assert {m.created.date() for m in left} == expected
    assert {m.backup_id for m in result.kept} == {m.backup_id for m in left}
    assert len(result.removed) == 365 - 15
    assert len(swift_store.list("prod/")) == 2 * 15            # each kept backup: archive + manifest, nothing else


# -- by hand ------------------------------------------------------------------------------------------

def doc_block(title: str) -> str:
    """The shell block of docs/restore-by-hand.md whose first line is `# <title>`."""
    text = (ROOT / "docs" / "restore-by-hand.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        if block.startswith(f"# {title}\n"):
            return block
    raise AssertionError(f"docs/restore-by-hand.md has no sh block starting with '# {title}'")


@pytest.mark.parametrize("api, tool", [("swift", "swift"), ("s3", "aws")])
def test_restore_by_hand_as_the_docs_say_gives_the_same_files(tmp_path, request, api, tool):
    # Given an older and a newer backup of an environment
    store = request.getfixturevalue(f"{api}_store")
    source = make_environment(tmp_path / "prod", rows=1000, blob_bytes=3 * MiB)
    write_backup(store, "prod", source, now=datetime.now(timezone.utc) - timedelta(days=1))
    newest = write_backup(store, "prod", source)
    files_before = file_checksums(source.root, skip=DATABASES + ("logs",))
    rows_before = {name: table_checksums(source.root / name) for name in DATABASES}

    # When the docs' shell block runs with nothing but the CLI, sha256sum, zstd and tar
    work = tmp_path / "work"
    work.mkdir()
    done = run_doc_block(tool, work, by_hand_env(store, tmp_path / "by-hand"))

    # Then the newest backup was chosen and checked, and the files and rows are those backed up
    assert done.returncode == 0, done.stderr
    assert "archive.tar.zst: OK" in done.stdout
    assert newest.backup_id in (work / "manifest.json").read_text()
    assert file_checksums(tmp_path / "by-hand", skip=DATABASES) == files_before
    assert {name: table_checksums(tmp_path / "by-hand" / name) for name in DATABASES} == rows_before


def by_hand_env(store, target: Path, **extra) -> dict:
    env = {**os.environ, "ENV": "prod", "TARGET": str(target), **extra}
    if store.name.startswith("swift:"):
        env.update(CONTAINER=store.container, ST_AUTH=AUTH_URL, ST_USER=USER, ST_KEY=KEY)
    else:
        env.update(BUCKET=store.bucket, S3_ENDPOINT=S3_ENDPOINT, AWS_ACCESS_KEY_ID=USER, AWS_SECRET_ACCESS_KEY=KEY,
                   AWS_DEFAULT_REGION="us-east-1")
    return env


def run_doc_block(tool: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", doc_block(f"by-hand restore with the {tool} CLI")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_by_hand_check_refuses_an_archive_replaced_behind_doppels_back(tmp_path, swift_store):
    # Given a backup whose archive object was replaced by other bytes (Swift itself sees nothing wrong)
    source = tmp_path / "prod"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(2 * MiB))
    manifest = write_backup(swift_store, "prod", BackupSource(root=source))
    swift_connection().put_object(swift_store.container, manifest.archive_key, os.urandom(manifest.size))

    # When the docs' steps run, then sha256sum stops them before anything is unpacked
    env = by_hand_env(swift_store, tmp_path / "by-hand", BACKUP_ID=manifest.backup_id)
    done = run_doc_block("swift", tmp_path, env)
    assert done.returncode != 0
    assert "archive.tar.zst: FAILED" in done.stdout
    assert not (tmp_path / "by-hand").exists()
