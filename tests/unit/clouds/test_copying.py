"""Tree copies keep what cp -a keeps: bytes, modes, timestamps, symlinks; and share no inode."""
from __future__ import annotations

import os

from clouds.local.copying import copy_tree


def test_copy_tree_keeps_bytes_modes_times_and_links_in_new_inodes(tmp_path):
    source = tmp_path / "src"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "run").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(source / "bin" / "run", 0o750)
    (source / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (source / "empty").write_bytes(b"")
    os.symlink("bin/run", source / "link")
    os.symlink("/nowhere/at/all", source / "dangling")
    (source / "cache").mkdir()
    (source / "cache" / "x.log").write_text("noise")
    os.utime(source / "big", ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    os.utime(source / "bin", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    os.mkfifo(source / "pipe")

    stats = copy_tree(source, tmp_path / "dst", exclude=lambda rel: rel == "cache")

    target = tmp_path / "dst"
    assert (target / "big").read_bytes() == (source / "big").read_bytes()
    assert (target / "empty").read_bytes() == b""
    assert os.stat(target / "bin" / "run").st_mode & 0o7777 == 0o750
    assert os.stat(target / "big").st_mtime_ns == 1_600_000_000_123_456_789
    assert os.stat(target / "bin").st_mtime_ns == 1_500_000_000_000_000_000
    assert os.readlink(target / "link") == "bin/run" and os.readlink(target / "dangling") == "/nowhere/at/all"
    assert not (target / "cache").exists() and not (target / "pipe").exists()
    assert os.stat(target / "big").st_ino != os.stat(source / "big").st_ino
    assert stats.skipped == 1 and stats.bytes == 3 * 1024 * 1024 + 17 + len(b"#!/bin/sh\necho hi\n")


def test_copy_tree_copies_a_single_file(tmp_path):
    (tmp_path / "a.ini").write_text("[x]\n")
    copy_tree(tmp_path / "a.ini", tmp_path / "out" / "conf" / "a.ini")
    assert (tmp_path / "out" / "conf" / "a.ini").read_text() == "[x]\n"
