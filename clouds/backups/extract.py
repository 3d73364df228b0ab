"""Reading a backup's archive back: streamed from the store, hashed, decompressed and extracted.

The archive streams back from the store, is hashed as it comes, decompressed
and extracted member by member with tarfile's "data" filter (no absolute paths,
no `..`, no links out of the target, no devices). The caller (restore.py,
verify.py) extracts into a directory of its own and keeps it only when the
sha256 and size match the manifest.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zstandard

from clouds.backups.layout import Manifest
from clouds.backups.pipe import CHUNK, Progress, ProgressMeter
from core.stores import ObjectMissing, ObjectStore

_FILE_WRITE = 64 * 1024      # bytes per write of a restored file (see _Extracting)


class IntegrityError(RuntimeError):
    """A stored archive does not match its manifest (corrupt, truncated, replaced)."""


def extract(store: ObjectStore, manifest: Manifest, into: Path, progress: Progress | None,
            divert: Callable[[str], Any] | None = None) -> None:
    """Stream, hash, decompress and extract; raises IntegrityError naming the backup on any mismatch.

    `divert(member name)` may return a writable for a member's data to go to instead of a file
    (a server database's dump parts go to its restore); None extracts the member as usual.
    """
    into.mkdir(parents=True)
    meter = ProgressMeter(progress)
    try:
        chunks = store.get_stream(manifest.archive_key, progress=meter)
    except ObjectMissing:
        raise IntegrityError(f"backup {manifest.backup_id} of {manifest.env}: archive {manifest.archive_key} "
                             f"is missing from {store.name}") from None
    raw = _HashingReader(chunks)
    failure: Exception | None = None
    try:
        with _decompressor(manifest.compression, raw) as plain:
            # Not tarfile's stream mode "r|": it joins and re-slices its buffer on every read,
            # and those megabyte-sized temporaries cost more in page faults than the rest of
            # the restore. The plain mode reads headers and file data straight from the
            # decompressor; it only seeks forward as it goes (_Sequential).
            with _Extracting.open(fileobj=_Sequential(plain), mode="r:", copybufsize=CHUNK) as tar:
                for member in tar:
                    sink = divert(member.name) if divert is not None and member.isfile() else None
                    if sink is None:
                        tar.extract(member, into, filter="data")
                        continue
                    tar.fileobj.seek(member.offset_data)
                    tar.fileobj.copy_to(sink, member.size)
            while plain.read(CHUNK):     # the tar's end blocks and the compressed stream's end
                pass
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError, gzip.BadGzipFile) as exc:
        failure = exc
    raw.drain()                          # hash every stored byte, even after a failure
    meter.finish()
    _check(manifest, raw, failure)


def _check(manifest: Manifest, raw: _HashingReader, failure: Exception | None) -> None:
    mismatches = []
    if raw.sha256 != manifest.sha256:
        mismatches.append(f"sha256 expected {manifest.sha256}, got {raw.sha256}")
    if raw.size != manifest.size:
        mismatches.append(f"size expected {manifest.size} bytes, got {raw.size}")
    what = f"backup {manifest.backup_id} of {manifest.env}: archive {manifest.archive_key}"
    if raw.error is not None:
        failure = raw.error
        mismatches.append(f"the download stopped after {raw.size} bytes")
    cause = f"{type(failure).__name__}: {failure}" if failure else ""
    if mismatches:
        raise IntegrityError(f"{what} does not match its manifest: {'; '.join(mismatches)}"
                             + (f" ({cause})" if cause else ""))
    if isinstance(failure, tarfile.FilterError):
        raise IntegrityError(f"{what} holds a member that would land outside the target; refused: {cause}")
    if failure:
        raise IntegrityError(f"{what} matches its manifest but could not be extracted: {cause}")


@contextlib.contextmanager
def _decompressor(compression: str, raw: _HashingReader):
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK, read_across_frames=True,
                                                            closefd=False)
    elif compression == "gzip":
        reader = gzip.GzipFile(fileobj=raw, mode="rb")
    else:
        raise IntegrityError(f"unknown compression {compression!r} in the manifest")
    try:
        yield reader
    finally:
        reader.close()


class _Extracting(tarfile.TarFile):
    """tarfile's reader, with each regular file's data decompressed into one buffer reused for every write.

    TarFile.makefile copies with a read per megabyte, each a new bytes object:
    memory the allocator takes back and the kernel has to fault in again for the
    next, and a second copy of every byte on top of the decompressor's. The writes
    are of 64 KiB, as `swift download` writes: on this project's test machines
    (Linux 6.18, ext4, a VM) writes of 1 MiB into the page cache cost 3 to 10 times
    the kernel CPU per byte, 256 KiB writes now and then twice (bench/RESULTS.md).
    """

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: str) -> None:
        if tarinfo.sparse is not None:
            return super().makefile(tarinfo, targetpath)
        self.fileobj.seek(tarinfo.offset_data)
        with open(targetpath, "wb") as target:
            self.fileobj.copy_to(target, tarinfo.size)


class _Sequential:
    """A decompressed stream as tarfile's plain read mode wants a file: it tells, and seeks forward by reading.

    tarfile only seeks back to extract a hard link whose target it could not link
    to; that fails here with a ReadError, as it would in stream mode.
    """

    def __init__(self, stream):
        self._stream = stream
        self._pos = 0
        self._buffer = memoryview(bytearray(CHUNK))

    def copy_to(self, target, size: int) -> None:
        """Write the next `size` bytes into `target`, decompressed straight into the one buffer."""
        while size:
            view = self._buffer[:min(size, CHUNK)]
            filled = 0
            while filled < len(view):
                n = self._stream.readinto(view[filled:])
                if not n:
                    raise tarfile.ReadError("unexpected end of data")
                filled += n
            for start in range(0, filled, _FILE_WRITE):
                target.write(view[start:start + _FILE_WRITE])
            self._pos += filled
            size -= filled

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or offset < self._pos:
            raise tarfile.ReadError(f"the archive is read as a stream: cannot go back to byte {offset} "
                                    f"from byte {self._pos}")
        while self._pos < offset and self.read(min(CHUNK, offset - self._pos)):
            pass
        return self._pos


class _Prefetch(threading.Thread):
    """Downloads and hashes ahead in its own thread (a few chunks), so the network and hashing overlap
    with decompressing and writing files. `sha256` covers what was received, in order."""

    _END = object()

    def __init__(self, chunks: Iterator[bytes], depth: int = 8):
        super().__init__(name="restore-download", daemon=True)
        self._chunks = chunks
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self.sha256 = hashlib.sha256()
        self.start()

    def run(self) -> None:
        try:
            for chunk in self._chunks:
                self.sha256.update(chunk)
                self._queue.put(chunk)
            self._queue.put(self._END)
        except Exception as exc:  # noqa: BLE001 - handed to the reading thread
            self._queue.put(exc)

    def __next__(self) -> bytes:
        item = self._queue.get()
        if item is self._END:
            self._queue.put(item)        # stay at the end for later reads
            return b""
        if isinstance(item, Exception):
            self._queue.put(self._END)
            raise item
        return item


class _HashingReader:
    """A file over the store's chunks that counts, and (through the prefetcher) hashes, every byte."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = _Prefetch(chunks)
        self._current = b""
        self.size = 0
        self.error: Exception | None = None

    @property
    def sha256(self) -> str:
        """Of everything handed out; valid once the stream is drained (the prefetcher may be ahead before)."""
        return self._chunks.sha256.hexdigest()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._current and self.error is None:
            try:
                self._current = next(self._chunks)
            except Exception as exc:  # noqa: BLE001 - a download cut short is reported like a short object
                self.error = exc
        if n is None or n < 0:
            n = len(self._current)
        data, self._current = self._current[:n], self._current[n:]
        self.size += len(data)
        return data

    def readinto(self, target) -> int:
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
