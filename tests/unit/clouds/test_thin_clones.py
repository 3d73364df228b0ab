"""Thin clones on the local driver: on XFS a clone's files (its database too) are reflinks sharing production's
blocks, a write to the clone gets blocks of its own and leaves production as it was; on a filesystem without
reflinks the driver copies, and says so once in the log.

Each filesystem is a small loop mount of its own (tests/support/loopfs.py): root and xfsprogs
(tests/services/xfs.sh) or the tests skip. The local driver's own guarantees
(tests/unit/clouds/test_local_driver.py) run again here on XFS. Cost: two mkfs and
mounts (about 1 s) and the guarantees' own time (the consistency test waits for a
writer's commits: 5-20 s on a loaded machine).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clouds.local import LocalDriver
from clouds.local.copying import REFLINKS
from tests.support.loopfs import LoopUnavailable, loop_filesystem
from tests.unit.clouds import test_local_driver as on_ext4

pytestmark = pytest.mark.loopmount
MIB = 1 << 20

# The local driver's guarantees, run again here with tmp_path on XFS (where copies are reflinks)
test_on_xfs_snapshot_is_consistent_while_writing = on_ext4.test_snapshot_is_consistent_while_production_keeps_writing
test_on_xfs_production_files_are_byte_identical = \
    on_ext4.test_production_files_are_byte_identical_after_snapshot_clone_and_configure
test_on_xfs_no_personal_data_in_the_clone = on_ext4.test_no_production_email_name_or_phone_appears_in_the_clone
test_on_xfs_keep_snapshots_leaves_the_snapshot_whole = on_ext4.test_keep_snapshots_leaves_the_snapshot_whole
test_on_xfs_delete_stack_removes_the_env = on_ext4.test_delete_stack_removes_the_env_and_its_dns_record


def mounted(kind: str):
    try:
        with loop_filesystem(kind, 512 * MIB) as mount_point:
            yield mount_point
    except LoopUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def xfs():
    yield from mounted("xfs")


@pytest.fixture(scope="module")
def ext4():
    yield from mounted("ext4")


@pytest.fixture
def tmp_path(xfs, request):
    """Every test here works on the module's XFS (conftest's production and driver use tmp_path)."""
    path = xfs / re.sub(r"\W", "_", request.node.name)[:80]
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_reflink_knowledge():
    """A loop device's number is reused by the next mount: learn each filesystem anew."""
    REFLINKS.forget()
    yield
    REFLINKS.forget()


def extents(path: Path) -> list[tuple[int, int, bool]]:
    """(physical start, length, shared) of each extent of `path`, as `filefrag -v` reads them with FIEMAP."""
    listed = subprocess.run(["filefrag", "-v", str(path)], capture_output=True, text=True, check=True).stdout
    found = []
    for line in listed.splitlines():
        match = re.match(r"\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+):.*?(\S*)$", line)
        if match:
            found.append((int(match[1]), int(match[2]), "shared" in match[3]))
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bfree * stats.f_frsize


def test_a_clone_shares_productions_blocks_and_a_write_to_it_leaves_production_as_it_was(production, driver):
    # Given a production on XFS with 32 MiB of media beside its database
    root, _entry = production
    media = root / "app" / "media.bin"
    media.write_bytes(os.urandom(32 * MIB))
    before = {path: digest(root / path) for path in ("app/media.bin", "data/shop.db")}
    free = free_bytes(root)
    # When it is cloned (the snapshot, then the env taking the snapshot's copy)
    stack = driver.create_stack("pr-1", driver.snapshot("shop", "pr-1", "req-1"), {}, "req-1")
    env_root = Path(stack.outputs["root"])
    # Then the clone's files, database included, are production's blocks, shared: almost no space is used
    for path in ("app/media.bin", "data/shop.db"):
        clone = extents(env_root / path)
        assert clone and all(shared for _start, _length, shared in clone), path
        assert [extent[:2] for extent in clone] == [extent[:2] for extent in extents(root / path)], path
        assert digest(env_root / path) == before[path]
    assert free - free_bytes(root) < 4 * MIB
    # When the clone's file is written in the middle
    with open(env_root / "app" / "media.bin", "r+b") as handle:
        handle.seek(5 * MIB)
        handle.write(b"written in the clone" * 1000)
    # Then production's file is byte-identical and the clone's differs
    assert digest(media) == before["app/media.bin"]
    assert digest(env_root / "app" / "media.bin") != before["app/media.bin"]
    assert (env_root / "app" / "media.bin").read_bytes()[:5 * MIB] == media.read_bytes()[:5 * MIB]


def test_where_the_filesystem_has_no_reflinks_the_driver_copies_and_says_so_once(ext4, caplog):
    # Given a production and the state directory on ext4
    from clouds.local.sample import make_sample_production
    entry = make_sample_production(ext4 / "prod" / "shop", rows=20)
    (ext4 / "prod" / "shop" / "app" / "media.bin").write_bytes(os.urandom(2 * MIB))
    driver = LocalDriver(ext4 / "state", {"shop": entry})
    # When two environments are cloned
    with caplog.at_level(logging.WARNING, logger="clouds.local.copying"):
        stacks = [driver.create_stack(env, driver.snapshot("shop", env, f"req-{env}"), {}, f"req-{env}")
                  for env in ("pr-1", "pr-2")]
    # Then each is a whole copy of its own, and the log said once why, naming the filesystem and the remedy
    for stack in stacks:
        copied = Path(stack.outputs["root"]) / "app" / "media.bin"
        assert digest(copied) == digest(ext4 / "prod" / "shop" / "app" / "media.bin")
        assert not any(shared for _start, _length, shared in extents(copied))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "ext4" in warnings[0] and "has no reflinks" in warnings[0] and "XFS" in warnings[0]
