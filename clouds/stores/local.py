"""A directory as an object store: the embedded default, and the store of the fast tests.

Keys map to paths under `root`. An object is written under `.incoming/` first,
fsynced, then renamed into place, so a reader (or a crash) never sees half an
object under its key: it is there whole or not at all, exactly as with Swift and S3.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import quote, unquote

from clouds.stores.segments import MiB, check_key, read_full
from core.stores import ObjectInfo, ObjectMissing, StoreError

log = logging.getLogger(__name__)

INCOMING = ".incoming"   # objects being written; never listed
_CHUNK = MiB


class LocalStore:
    """Objects as files under `root`; `orphan_grace` seconds without a write make an incoming file stale."""

    def __init__(self, root: Path, *, orphan_grace: float = 3600.0):
        self.root = Path(root)
        self.orphan_grace = float(orphan_grace)
        self.name = f"local:{self.root}"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- writing -----------------------------------------------------------------

    def put_stream(self, key: str, stream: BinaryIO, *, progress=None) -> ObjectInfo:
        target = self._path(key)
        incoming = self.root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        # The key is in the temporary name, so cleanup_orphans can honour its prefix.
        temp = incoming / f"{quote(key, safe='')}.{uuid.uuid4().hex}"
        try:
            size = self._write(temp, stream, progress)
            self._move_into_place(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return self._info(key, target, size)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self.put_stream(key, io.BytesIO(data))

    def _move_into_place(self, temp: Path, target: Path) -> None:
        # A concurrent delete may remove the (empty) parent between mkdir and rename: once more then.
        for attempt in (1, 2):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(temp, target)
                break
            except FileNotFoundError:
                if attempt == 2 or not temp.exists():
                    raise
        _fsync_dir(target.parent)

    def _write(self, temp: Path, stream: BinaryIO, progress) -> int:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        size = 0
        try:
            with open(temp, "xb") as out:
                while n := read_full(stream, view):
                    out.write(view[:n])
                    size += n
                    if progress is not None:
                        progress(size)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise StoreError(f"{self.name}: cannot write {temp.name}: {exc.strerror or exc}") from exc
        return size

    # -- reading -----------------------------------------------------------------

    def get_stream(self, key: str, *, progress=None) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            raise ObjectMissing(f"{self.name}: no object {key}") from None
        return _chunks(handle, progress)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.name}: no object {key}") from None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and INCOMING in dirnames:
                dirnames.remove(INCOMING)
            for filename in filenames:
                path = Path(dirpath) / filename
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(self._info(key, path))
        return sorted(found, key=lambda info: info.key)

    # -- removing ----------------------------------------------------------------

    def delete(self, key: str, *, ignore_missing: bool = True) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            if not ignore_missing:
                raise ObjectMissing(f"{self.name}: no object {key}") from None
            return
        self._prune_empty_dirs(path.parent)

    def cleanup_orphans(self, prefix: str = "") -> list[str]:
        """Remove incoming files under `prefix` that nobody has written to for `orphan_grace` seconds."""
        incoming = self.root / INCOMING
        if not incoming.is_dir():
            return []
        removed = []
        cutoff = time.time() - self.orphan_grace
        for temp in sorted(incoming.iterdir()):
            key = unquote(temp.name.rsplit(".", 1)[0])
            try:
                stale = temp.stat().st_mtime <= cutoff
            except FileNotFoundError:
                continue          # finished (renamed) while we looked
            if key.startswith(prefix) and stale:
                temp.unlink(missing_ok=True)
                removed.append(f"{INCOMING}/{temp.name}")
        return removed

    # -- helpers -----------------------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == INCOMING:
            raise ValueError(f"invalid object key {key!r}: {INCOMING}/ is where incomplete objects live")
        return self.root / key

    def _info(self, key: str, path: Path, size: int | None = None) -> ObjectInfo:
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)
        return ObjectInfo(key=key, size=stat.st_size if size is None else size, modified=modified)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove directories emptied by a delete, so a pruned backup leaves no trace."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return
                raise
            directory = directory.parent


def _chunks(handle, progress) -> Iterator[bytes]:
    done = 0
    with handle:
        while chunk := handle.read(_CHUNK):
            done += len(chunk)
            if progress is not None:
                progress(done)
            yield chunk


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable: without it a power cut can forget the new name."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
