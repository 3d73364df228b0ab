"""Writing a backup: one tar stream per backup, compressed, then a manifest.

A producer thread walks the environment's directory into a tar stream
(SQLite databases captured under a read transaction, see sqlite_capture.py;
databases on a server dumped by their engine's tool, see server_capture.py),
compresses it (zstd, storing what does not compress, or gzip: compress.py) and
feeds it through a bounded in-memory pipe straight into `store.put_stream`,
which uploads it in parallel segments. The sha256 and size of the compressed
stream are computed as it passes. Only once the archive is stored is the
manifest written: a backup without a manifest is incomplete, never listed,
never restored, and cleaned up (cleanup.py).

The layout of objects and the manifest are in layout.py.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import stat
import tarfile
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from clouds.backups.compress import DEFAULT_LEVEL, StoringZstd, compressor
from clouds.backups.layout import Component, Manifest, archive_key, check_env, new_backup_id
from clouds.backups.pipe import CHUNK, Progress, ProgressMeter, StreamPipe
from clouds.backups.server_capture import ServerCaptureError, add_server_database
from clouds.backups.sqlite_capture import CaptureError, add_database, add_file
from core.cloud import BackupSource
from core.stores import ObjectStore

log = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "gzip")
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(RuntimeError):
    """A backup could not be written; the message names the environment and the backup."""


def write_backup(store: ObjectStore, env: str, source: BackupSource, *, compression: str = "zstd",
                 level: int | None = None, progress: Progress | None = None, now: datetime | None = None,
                 backup_id: str | None = None) -> Manifest:
    """Back up `source` (a directory tree and its SQLite databases) as `<env>/<backup_id>/` in `store`.

    Returns the manifest, written last. `progress(bytes, rate)` reports the bytes read
    from the source so far (before compression: what `source_size` totals). Raises
    BackupError; whatever was uploaded before a failure stays invisible (no manifest)
    and is removed by cleanup.remove_incomplete.
    """
    check_env(env)
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")
    # To the microsecond, as the manifest stores it: two backups of one env in the same second still sort
    # by when they started (the id keeps whole seconds only).
    created = (now or datetime.now(UTC)).astimezone(UTC)
    backup_id = backup_id or new_backup_id(created)
    key = archive_key(env, backup_id, compression)
    meter = ProgressMeter(progress)
    producer = _Producer(source, compression, DEFAULT_LEVEL[compression] if level is None else level, meter)
    producer.start()
    try:
        stored = store.put_stream(key, producer.pipe.reader)
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


def _manifest(env, backup_id, created, key, compression, producer: _Producer) -> Manifest:
    completed = datetime.now(UTC)
    return Manifest(backup_id=backup_id, env=env, created=created, completed=completed,
                    archive_key=key, compression=compression, size=producer.pipe.reader.size,
                    sha256=producer.pipe.reader.sha256, uncompressed_size=producer.uncompressed,
                    components=tuple(producer.components), warnings=tuple(producer.warnings),
                    tool=f"doppel {_version()}")


class _Producer(threading.Thread):
    """Writes the compressed tar of `source` into a pipe, in its own thread."""

    def __init__(self, source: BackupSource, compression: str, level: int, meter=None):
        super().__init__(name="backup-archive", daemon=True)
        self.meter = meter
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
            counted = _Counting(self.meter)
            with compressor(self.compression, self.level, self.pipe.writer) as compressed:
                counted.target = compressed
                self._write_tar(counted)
            self.uncompressed = counted.count
            if isinstance(compressed, StoringZstd) and compressed.stored:
                log.info("%d of %d bytes stored as they were: they did not compress", compressed.stored,
                         compressed.total)
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
        if isinstance(self.error, (CaptureError, ServerCaptureError)):
            return str(self.error)
        return f"{type(self.error).__name__}: {self.error}"

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
            servers = [add_server_database(tar, entry) for entry in self.source.servers]
        self.components = [files.component(), *databases.components(), *servers]

    def _add(self, tar: tarfile.TarFile, path: Path, arcname: str, files: _FilesTally) -> None:
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            if add_file(tar, path, arcname):
                self.warnings.append(f"{arcname} changed while it was read")
            files.add(path)
        elif stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            tar.addfile(tar.gettarinfo(path, arcname))
        else:
            self.warnings.append(f"{arcname} skipped: not a file, directory or link")


def _walk(root: Path, exclude: Iterable[str], databases: _Databases) -> Iterator[tuple[Path, str]]:
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


def source_size(source: BackupSource) -> int:
    """About how many bytes the tar of `source` holds (each entry's header, its data padded to whole
    blocks, the closing blocks): the total its progress is measured against."""
    total = 2 * tarfile.BLOCKSIZE * 10  # the end-of-archive blocks, rounded up to tarfile's record
    try:
        for path, _ in _walk(Path(source.root), source.exclude, _Databases(source.databases)):
            total += tarfile.BLOCKSIZE
            if not path.is_symlink() and path.is_file():
                total += -(-path.stat().st_size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    except (OSError, CaptureError):
        return 0  # the backup itself says what is wrong
    return total


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

    def __init__(self, meter=None):
        self.target = None
        self.count = 0
        self.meter = meter

    def write(self, data) -> int:
        self.count += len(data)
        if self.meter is not None:
            self.meter(self.count)
        return self.target.write(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.target.flush()


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("doppel")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "dev"
