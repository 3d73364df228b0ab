"""Write, list, restore and verify backups: one tar stream per backup, compressed, then a manifest.

Writing: a producer thread walks the environment's directory into a tar stream
(SQLite databases captured under a read transaction, see sqlite_capture.py),
compresses it (zstd, or gzip) and feeds it through a bounded in-memory pipe
straight into `store.put_stream`, which uploads it in parallel segments. The
sha256 and size of the compressed stream are computed as it passes. Only once
the archive is stored is the manifest written: a backup without a manifest is
incomplete, never listed, never restored, and cleaned up (cleanup.py).

Reading: the archive streams back from the store, is hashed as it comes,
decompressed and extracted member by member with tarfile's "data" filter (no
absolute paths, no `..`, no links out of the target, no devices), into a staging
directory that becomes the target only when the sha256 and size match.

The layout of objects and the manifest are in layout.py; docs/restore-by-hand.md
shows how to do the same with the swift or aws CLI, zstd, tar and sha256sum.
"""
from __future__ import annotations

import contextlib
import fnmatch
import gzip
import hashlib
import logging
import os
import queue
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import zstandard

from clouds.backups.layout import (Component, Manifest, ManifestError, MANIFEST_NAME, archive_key,
                                   check_env, manifest_key, new_backup_id, split_key)
from clouds.backups.pipe import CHUNK, ProgressMeter, StreamPipe
from clouds.backups.sqlite_capture import CaptureError, add_database, add_file
from core.cloud import BackupSource
from core.stores import ObjectMissing, ObjectStore

log = logging.getLogger(__name__)

Progress = Callable[[int, float], None]   # (bytes so far, bytes per second)
COMPRESSIONS = ("zstd", "gzip")
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_DEFAULT_LEVEL = {"zstd": 3, "gzip": 6}
_ZSTD_JOB = 4 * CHUNK          # bytes per zstd compression job (see _compressor)
_FILE_WRITE = 64 * 1024      # bytes per write of a restored file (see _Extracting)
_PARALLEL_REQUESTS = 8        # small requests in flight at once when listing or pruning many backups


class BackupError(RuntimeError):
    """A backup could not be written; the message names the environment and the backup."""


class BackupNotFound(LookupError):
    """No complete backup with that id (it may be incomplete: no manifest)."""


class IntegrityError(RuntimeError):
    """A stored archive does not match its manifest (corrupt, truncated, replaced)."""


# ----------------------------------------------------------------------------- writing

def write_backup(store: ObjectStore, env: str, source: BackupSource, *, compression: str = "zstd",
                 level: int | None = None, progress: Progress | None = None, now: datetime | None = None,
                 backup_id: str | None = None) -> Manifest:
    """Back up `source` (a directory tree and its SQLite databases) as `<env>/<backup_id>/` in `store`.

    Returns the manifest, written last. `progress(bytes, rate)` reports compressed
    bytes stored. Raises BackupError; whatever was uploaded before a failure stays
    invisible (no manifest) and is removed by cleanup.remove_incomplete.
    """
    check_env(env)
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")
    # To the microsecond, as the manifest stores it: two backups of one env in the same second still sort
    # by when they started (the id keeps whole seconds only).
    created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    backup_id = backup_id or new_backup_id(created)
    key = archive_key(env, backup_id, compression)
    meter = ProgressMeter(progress)
    producer = _Producer(source, compression, _DEFAULT_LEVEL[compression] if level is None else level)
    producer.start()
    try:
        stored = store.put_stream(key, producer.pipe.reader, progress=meter)
    except BaseException as exc:
        producer.stop()
        if not isinstance(exc, Exception):
            raise                             # KeyboardInterrupt, SystemExit: not a backup failure
        raise BackupError(f"backup {backup_id} of {env} to {store.name} failed: "
                          f"{producer.error_text() or exc}") from exc
    producer.join()
    meter.finish()
    manifest = _manifest(env, backup_id, created, key, compression, producer)
    if stored.size != manifest.size:
        raise BackupError(f"backup {backup_id} of {env}: {store.name} stored {stored.size} bytes "
                          f"of a {manifest.size}-byte archive; not marking it complete")
    store.put_bytes(manifest.key, manifest.to_json())
    log.info("backup %s of %s: %d bytes (%d before compression) in %s", backup_id, env, manifest.size,
             manifest.uncompressed_size, store.name)
    return manifest


def _manifest(env, backup_id, created, key, compression, producer: "_Producer") -> Manifest:
    completed = datetime.now(timezone.utc)
    return Manifest(backup_id=backup_id, env=env, created=created, completed=completed,
                    archive_key=key, compression=compression, size=producer.pipe.reader.size,
                    sha256=producer.pipe.reader.sha256, uncompressed_size=producer.uncompressed,
                    components=tuple(producer.components), warnings=tuple(producer.warnings),
                    tool=f"doppel {_version()}")


class _Producer(threading.Thread):
    """Writes the compressed tar of `source` into a pipe, in its own thread."""

    def __init__(self, source: BackupSource, compression: str, level: int):
        super().__init__(name="backup-archive", daemon=True)
        self.source = source
        self.compression = compression
        self.level = level
        self.pipe = StreamPipe()
        self.components: list[Component] = []
        self.warnings: list[str] = []
        self.uncompressed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            counted = _Counting()
            with _compressor(self.compression, self.level, self.pipe.writer) as compressed:
                counted.target = compressed
                self._write_tar(counted)
            self.uncompressed = counted.count
            self.pipe.close_writer()
        except BaseException as exc:  # noqa: BLE001 - handed to the uploading thread through the pipe
            self.error = exc
            self.pipe.close_writer(exc)

    def stop(self) -> None:
        self.pipe.close_reader()
        self.join()

    def error_text(self) -> str | None:
        if self.error is None or isinstance(self.error, BrokenPipeError):
            return None
        return str(self.error) if isinstance(self.error, CaptureError) else f"{type(self.error).__name__}: {self.error}"

    def _write_tar(self, out) -> None:
        files = _FilesTally()
        # Mode "w" on a file that only appends and tells, not the stream mode "w|": the stream
        # mode gathers everything in a bytes buffer it re-concatenates and re-slices on every
        # write, four copies of each byte. Plain "w" writes headers and file blocks straight
        # through; it never seeks when writing, and the bytes are the same.
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
            databases = _Databases(self.source.databases)
            for path, arcname in _walk(Path(self.source.root), self.source.exclude, databases):
                if arcname in databases.names:
                    captured = add_database(tar, path, arcname)
                    databases.done(arcname, captured)
                    tar.members.clear()
                    continue
                self._add(tar, path, arcname, files)
                tar.members.clear()       # tarfile keeps every header it wrote: ~0.5 KB a file, without end
            missing = databases.missing()
            if missing:
                raise CaptureError(f"database(s) {', '.join(missing)} not found under {self.source.root}")
        self.components = [files.component(), *databases.components()]

    def _add(self, tar: tarfile.TarFile, path: Path, arcname: str, files: "_FilesTally") -> None:
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            if add_file(tar, path, arcname):
                self.warnings.append(f"{arcname} changed while it was read")
            files.add(path)
        elif stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            tar.addfile(tar.gettarinfo(path, arcname))
        else:
            self.warnings.append(f"{arcname} skipped: not a file, directory or link")


def _walk(root: Path, exclude: Iterable[str], databases: "_Databases") -> Iterator[tuple[Path, str]]:
    """Everything under root, sorted (reproducible archives), minus excluded paths and SQLite side files."""
    if not root.is_dir():
        raise CaptureError(f"{root} is not a directory")
    patterns = tuple(exclude)
    for dirpath, dirnames, filenames in os.walk(root):
        relative_dir = Path(dirpath).relative_to(root)
        kept = []
        for name in sorted(dirnames):
            arcname = (relative_dir / name).as_posix()
            if not _excluded(arcname, patterns):
                kept.append(name)
                yield Path(dirpath) / name, arcname
        dirnames[:] = kept
        for name in sorted(filenames):
            arcname = (relative_dir / name).as_posix()
            if not _excluded(arcname, patterns) and not databases.is_side_file(arcname):
                yield Path(dirpath) / name, arcname


def _excluded(arcname: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(arcname, p) for p in patterns)


class _Databases:
    """The SQLite databases to capture (relative paths), and what was captured of each."""

    def __init__(self, names: Iterable[str]):
        self.names = {Path(n).as_posix() for n in names}
        self._captured: dict[str, Component] = {}

    def is_side_file(self, arcname: str) -> bool:
        return any(arcname == n + suffix for n in self.names for suffix in _SQLITE_SIDE_FILES)

    def done(self, arcname: str, captured) -> None:
        self._captured[arcname] = Component(name=arcname, kind="sqlite", bytes=captured.bytes,
                                            journal_mode=captured.journal_mode, files=captured.files)

    def missing(self) -> list[str]:
        return sorted(self.names - set(self._captured))

    def components(self) -> list[Component]:
        return [self._captured[n] for n in sorted(self._captured)]


class _FilesTally:
    def __init__(self):
        self.count = 0
        self.bytes = 0

    def add(self, path: Path) -> None:
        self.count += 1
        self.bytes += path.stat().st_size

    def component(self) -> Component:
        return Component(name="files", kind="files", bytes=self.bytes, count=self.count)


class _Counting:
    """Counts the uncompressed bytes on their way to the compressor; an append-only file for tarfile."""

    def __init__(self):
        self.target = None
        self.count = 0

    def write(self, data) -> int:
        self.count += len(data)
        return self.target.write(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.target.flush()


@contextlib.contextmanager
def _compressor(compression: str, level: int, out: BinaryIO):
    """A writable file compressing into `out`; the stream's end is written on exit, `out` left open."""
    if compression == "zstd":
        # One zstd worker thread, in jobs of 4 MiB. Not for parallelism: fed in small writes
        # (tar headers, then a megabyte), zstd's single-threaded stream wraps its window
        # buffer and matches on its slow external-dictionary path, about twice the CPU
        # (bench/RESULTS.md). Jobs keep the window contiguous. The same level, one frame,
        # the same window; memory grows by about 25 MiB, whatever the size.
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=1, job_size=_ZSTD_JOB)
        writer = zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False,
                                                                                   write_size=CHUNK)
    else:
        writer = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0)
    try:
        yield writer
    finally:
        writer.close()


# ----------------------------------------------------------------------------- finding

def list_backups(store: ObjectStore, env: str | None = None) -> list[Manifest]:
    """Complete backups (those with a readable manifest), oldest first (by start time, then id); all
    environments when env is None.

    Manifests are fetched a few at a time: a year of nightly backups is hundreds of small GETs.
    """
    prefix = f"{check_env(env)}/" if env else ""
    keys = [info.key for info in store.list(prefix)
            if (parts := split_key(info.key)) is not None and parts[2] == MANIFEST_NAME]
    with ThreadPoolExecutor(_PARALLEL_REQUESTS, thread_name_prefix="manifests") as pool:
        manifests = [m for m in pool.map(lambda key: _read_manifest(store, key), keys) if m is not None]
    return sorted(manifests, key=lambda m: (m.created, m.backup_id))


def _read_manifest(store: ObjectStore, key: str) -> Manifest | None:
    try:
        return Manifest.from_json(store.get_bytes(key), key=key)
    except (ManifestError, ObjectMissing) as exc:      # unreadable, or deleted while we listed
        log.warning("%s: skipping %s: %s", store.name, key, exc)
        return None


def find_backup(store: ObjectStore, backup_id: str, env: str | None = None) -> Manifest:
    """The manifest of a complete backup; raises BackupNotFound (naming the store) when there is none."""
    if env:
        key = manifest_key(env, backup_id)
        try:
            return Manifest.from_json(store.get_bytes(key), key=key)
        except ObjectMissing:
            raise BackupNotFound(f"no complete backup {backup_id} of {env} in {store.name}") from None
    for info in store.list(""):
        parts = split_key(info.key)
        if parts and parts[1] == backup_id and parts[2] == MANIFEST_NAME:
            return Manifest.from_json(store.get_bytes(info.key), key=info.key)
    raise BackupNotFound(f"no complete backup {backup_id} in {store.name}")


def delete_backup(store: ObjectStore, manifest: Manifest) -> list[str]:
    """Delete a backup, manifest first: if interrupted, what remains is incomplete, never half-listed
    (and cleanup.remove_incomplete takes it later)."""
    store.delete(manifest.key)
    store.delete(manifest.archive_key)
    return [manifest.key, manifest.archive_key]


# ----------------------------------------------------------------------------- restoring

def restore(store: ObjectStore, backup: str | Manifest, target_dir: Path, *, env: str | None = None,
            progress: Progress | None = None) -> Manifest:
    """Restore a backup into `target_dir` (absent or empty), whole or not at all.

    Extracts into a staging directory beside the target and renames it into place
    only once the archive's sha256 and size match the manifest; SQLite databases
    are then checkpointed, so each is one self-contained file again.
    """
    manifest = backup if isinstance(backup, Manifest) else find_backup(store, backup, env)
    target = Path(target_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"restore of backup {manifest.backup_id}: {target} exists and is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.restoring-{manifest.backup_id}"
    shutil.rmtree(staging, ignore_errors=True)     # left by a restore that crashed
    try:
        _extract(store, manifest, staging, progress)
        _checkpoint_databases(manifest, staging)
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _extract(store: ObjectStore, manifest: Manifest, into: Path, progress: Progress | None) -> None:
    """Stream, hash, decompress and extract; raises IntegrityError naming the backup on any mismatch."""
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
                    tar.extract(member, into, filter="data")
            while plain.read(CHUNK):     # the tar's end blocks and the compressed stream's end
                pass
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError, gzip.BadGzipFile) as exc:
        failure = exc
    raw.drain()                          # hash every stored byte, even after a failure
    meter.finish()
    _check(manifest, raw, failure)


def _check(manifest: Manifest, raw: "_HashingReader", failure: Exception | None) -> None:
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


def _checkpoint_databases(manifest: Manifest, root: Path) -> None:
    for database in manifest.databases:
        conn = sqlite3.connect(root / database.name)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()


@contextlib.contextmanager
def _decompressor(compression: str, raw: "_HashingReader"):
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


# ----------------------------------------------------------------------------- verifying

@dataclass
class VerifyResult:
    """What a verification found; `problems` are messages that name the backup and say what is wrong."""
    backup_id: str
    env: str
    ok: bool
    archive_ok: bool
    databases: dict[str, str] = field(default_factory=dict)   # name -> "ok" or what integrity_check said
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.ok:
            return f"backup {self.backup_id} of {self.env}: verified ({len(self.databases)} database(s) intact)"
        return "; ".join(self.problems)


def verify(store: ObjectStore, backup: str | Manifest, *, env: str | None = None, scratch_dir: Path | None = None,
           progress: Progress | None = None) -> VerifyResult:
    """Download, check sha256 and size, extract into a scratch directory and run PRAGMA integrity_check.

    Never raises for a bad backup: the result says what is wrong (the caller
    records it). A missing backup raises BackupNotFound.
    """
    started = time.monotonic()
    manifest = backup if isinstance(backup, Manifest) else find_backup(store, backup, env)
    result = VerifyResult(manifest.backup_id, manifest.env, ok=False, archive_ok=False)
    scratch = Path(tempfile.mkdtemp(prefix=f"doppel-verify-{manifest.backup_id}-", dir=scratch_dir))
    try:
        _extract(store, manifest, scratch / "root", progress)
        result.archive_ok = True
        for database in manifest.databases:
            result.databases[database.name] = _integrity(scratch / "root" / database.name)
            if result.databases[database.name] != "ok":
                result.problems.append(f"backup {manifest.backup_id} of {manifest.env}: database {database.name} "
                                       f"fails PRAGMA integrity_check: {result.databases[database.name]}")
    except IntegrityError as exc:
        result.problems.append(str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.ok = result.archive_ok and not result.problems
    result.seconds = time.monotonic() - started
    return result


def _integrity(path: Path) -> str:
    if not path.is_file():
        return "missing from the archive"
    try:
        conn = sqlite3.connect(path)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"cannot be opened: {exc}"
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("doppel")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "dev"
