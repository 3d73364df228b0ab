"""The directory store: objects appear whole or not at all, and keys cannot escape the directory."""
from __future__ import annotations

import io
import os
import time

import pytest

from clouds.stores.local import INCOMING, LocalStore
from core.stores import ObjectMissing


class FailingStream(io.RawIOBase):
    """Gives `good` bytes, then fails like a producer that died."""

    def __init__(self, good: int):
        super().__init__()
        self.left = good

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.left <= 0:
            raise RuntimeError("producer died")
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


def test_a_stream_that_fails_midway_leaves_no_object(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(RuntimeError, match="producer died"):
        store.put_stream("prod/b1/archive.tar.zst", FailingStream(3 * 1024 * 1024))
    assert store.list() == []
    assert list((tmp_path / INCOMING).iterdir()) == []


def test_round_trip_list_and_delete(tmp_path):
    store = LocalStore(tmp_path / "store")
    data = os.urandom(3 * 1024 * 1024 + 7)
    seen = []
    info = store.put_stream("prod/b1/archive.tar.zst", io.BytesIO(data), progress=seen.append)
    store.put_bytes("prod/b1/manifest.json", b"{}")

    assert info.size == len(data) and seen[-1] == len(data)
    assert b"".join(store.get_stream("prod/b1/archive.tar.zst")) == data
    assert [(o.key, o.size) for o in store.list("prod/")] == [("prod/b1/archive.tar.zst", len(data)),
                                                               ("prod/b1/manifest.json", 2)]
    store.delete("prod/b1/archive.tar.zst")
    store.delete("prod/b1/manifest.json")
    store.delete("prod/b1/manifest.json")            # safe to repeat
    with pytest.raises(ObjectMissing):
        store.delete("prod/b1/manifest.json", ignore_missing=False)
    with pytest.raises(ObjectMissing):
        store.get_stream("prod/b1/archive.tar.zst")
    assert not (tmp_path / "store" / "prod").exists()  # emptied directories go too


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "", ".incoming/x", "a b"])
def test_keys_that_could_escape_or_confuse_are_refused(tmp_path, key):
    with pytest.raises(ValueError, match="invalid object key"):
        LocalStore(tmp_path).put_bytes(key, b"x")


def test_cleanup_removes_only_stale_incoming_files_under_the_prefix(tmp_path):
    store = LocalStore(tmp_path, orphan_grace=60)
    incoming = tmp_path / INCOMING
    incoming.mkdir()
    stale = incoming / "prod%2Fb1%2Farchive.tar.zst.aaaa"
    fresh = incoming / "prod%2Fb2%2Farchive.tar.zst.bbbb"
    other = incoming / "staging%2Fb3%2Farchive.tar.zst.cccc"
    for path in (stale, fresh, other):
        path.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))

    assert store.cleanup_orphans("prod/") == [f"{INCOMING}/{stale.name}"]
    assert sorted(p.name for p in incoming.iterdir()) == sorted([fresh.name, other.name])
