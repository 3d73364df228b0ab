"""A live SQLite database into a tar stream, consistent, without a temporary copy.

The online backup API would need a destination file (a local temp copy, which
backups must not make), and serialize() holds the whole database in memory. So
the files themselves are streamed while a read transaction is held open on the
database. Why that yields one committed state:

Rollback-journal modes (delete, truncate, persist): the read transaction holds a
SHARED lock. A writer must take the EXCLUSIVE lock before it writes a single
page into the database file, and cannot while we hold SHARED; it waits (up to its
busy timeout). The file does not change while we read it. Any -journal is not
needed and not copied (a hot journal is rolled back when we take the lock).

WAL mode: writers append frames to the -wal file and never touch the database
file; only a checkpoint copies frames into it, and a checkpoint never copies a
frame newer than what the oldest open reader sees, nor resets the WAL under a
reader that uses it. So while we hold the read transaction:
  * every database page a checkpoint may rewrite is also in a WAL frame that
    stays in the -wal file (the reset is blocked), and we stream the -wal after
    the database file, so on restore that frame overrides whatever version of
    the page we caught;
  * pages in no such frame do not change.
The restored pair (database + -wal) opens to the state of the last commit the
copied -wal holds whole: ours, or a later one. A frame being written as we read
it fails its checksum and is ignored on recovery, as after a crash.
One case escapes the rule: a reader that started when the WAL was entirely
checkpointed reads the database file alone, and then a writer may reset the WAL
(new salt, frames rewritten from the start). If that happens while we are
copying the -wal, the copy could mix two generations; we compare the WAL header
before and after and fail the backup (it is retried) rather than keep such a copy.

-shm files are never copied: SQLite rebuilds them. A database that grows or
shrinks while being read keeps the size taken when its tar header was written:
pages past a shrink are padded with zeros (they lie beyond the committed size
and are never read), pages past a growth are in the -wal.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

_BUSY_TIMEOUT = 30.0
_WAL_HEADER = 32
_SALT = slice(16, 24)     # salt-1 and salt-2 in the WAL header: they change when the WAL is reset


class CaptureError(RuntimeError):
    """A database could not be captured consistently; the message names it."""


@dataclass
class Captured:
    journal_mode: str
    bytes: int                 # as stored: the database file plus its -wal
    files: tuple[str, ...]     # names in the archive


def add_database(tar: tarfile.TarFile, path: Path, arcname: str) -> Captured:
    """Stream the database at `path` (and its -wal in WAL mode) into `tar` under one read transaction."""
    with _read_transaction(path, arcname) as journal_mode:
        with open(path, "rb") as handle:
            _, size = _add_open_file(tar, handle, arcname)
        files = [arcname]
        wal = Path(f"{path}-wal")
        if journal_mode == "wal" and wal.exists():
            size += _add_wal(tar, wal, f"{arcname}-wal")
            files.append(f"{arcname}-wal")
    return Captured(journal_mode=journal_mode, bytes=size, files=tuple(files))


@contextlib.contextmanager
def _read_transaction(path: Path, arcname: str):
    """An open read transaction on the database; yields its journal mode."""
    if not path.is_file():
        raise CaptureError(f"database {arcname} does not exist")
    # A normal (not read-only) connection: a read-only one to a WAL database can
    # leave empty -wal/-shm files behind. Nothing is ever written through it.
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read snapshot starts here
        yield journal_mode
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise CaptureError(f"database {arcname}: cannot hold a read transaction: {exc}") from exc
    finally:
        conn.close()


def _add_wal(tar: tarfile.TarFile, wal: Path, arcname: str) -> int:
    with open(wal, "rb") as handle:
        before = os.pread(handle.fileno(), _WAL_HEADER, 0)
        _, size = _add_open_file(tar, handle, arcname)
        after = os.pread(handle.fileno(), _WAL_HEADER, 0)
    if size >= _WAL_HEADER and before[_SALT] != after[_SALT]:
        raise CaptureError(f"database {arcname[:-4]}: its WAL was reset while being copied; "
                           "the copy cannot be trusted, run the backup again")
    return size


def add_file(tar: tarfile.TarFile, path: Path, arcname: str) -> bool:
    """Add a regular file, tolerating a file that changes size while read; True if it did."""
    with open(path, "rb") as handle:
        return _add_open_file(tar, handle, arcname)[0]


def _add_open_file(tar: tarfile.TarFile, handle, arcname: str) -> tuple[bool, int]:
    info = tar.gettarinfo(arcname=arcname, fileobj=handle)
    reader = _Exactly(handle, info.size)
    tar.addfile(info, reader)
    return reader.changed or bool(handle.read(1)), info.size


class _Exactly:
    """Reads exactly `size` bytes from a file: zero-padded if it shrank, cut if it grew.

    tarfile has already written the header with `size`; anything else would corrupt the archive.
    Each read fills the same buffer (this thread's) and returns a view of it: tarfile
    hands it to the compressor, which copies it, before it reads again. A new bytes
    object per megabyte would be memory the kernel faults in again for every read.
    """

    def __init__(self, handle, size: int):
        self._handle = handle
        self._left = size
        self.changed = False

    def read(self, n: int = -1) -> memoryview:
        n = self._left if n is None or n < 0 else min(n, self._left)
        view = _read_buffer(n)
        filled = 0
        while filled < n:
            got = self._handle.readinto(view[filled:])
            if not got:
                self.changed = True
                view[filled:] = bytes(n - filled)
                break
            filled += got
        self._left -= n
        return view


_buffers = threading.local()


def _read_buffer(n: int) -> memoryview:
    """A view of `n` bytes of this thread's read buffer (grown when a read asks for more)."""
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < n:
        buffer = _buffers.buffer = bytearray(max(n, 1 << 20))
    return memoryview(buffer)[:n]
