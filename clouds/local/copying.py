"""Copying trees of files as `cp -a` does, thin where the filesystem can.

Each file is a file of its own (no hard links: a clone must never share an inode
with production). Where the filesystem offers copy-on-write (XFS with reflink, the
mkfs.xfs default, and Btrfs, with source and copy on the same filesystem) a file is
a reflink (the FICLONE ioctl): it shares its blocks with the source until either is
written, which then gets blocks of its own, so a copy costs the same whatever the
file's size. Elsewhere the bytes are copied by the kernel (`copy_file_range`,
falling back to `sendfile`), and the first such copy says so once in the log, naming
the filesystem and what to do for thin copies. Several files at once on a thread
pool, keeping mode, timestamps and symlinks. Directory timestamps are set last,
deepest first, since writing into a directory changes its mtime.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

_CHUNK = 1 << 30
FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h: clone a whole file (a reflink)
# The filesystem (or the pair: EXDEV) has no reflinks; ENOTTY where the ioctl is unknown, EINVAL for files it
# cannot share (Btrfs nodatacow against datacow), EPERM/ETXTBSY for files it refuses to change.
_NO_REFLINK_ERRNOS = {errno.EOPNOTSUPP, errno.EXDEV, errno.ENOTTY, errno.EINVAL, errno.ENOSYS, errno.EPERM,
                      errno.ETXTBSY}
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.ETXTBSY}
_WORKERS = max(4, min(16, 4 * (os.cpu_count() or 1)))
_BATCH = 32  # files per job of the thread pool


@dataclass
class CopyStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # sockets, fifos, devices: not application files
    thin: int = 0     # files reflinked (sharing blocks with their source) rather than copied


class _Reflinks:
    """Whether reflinks work from one filesystem to another, learnt from the first file tried (never by writing
    a probe: the source is production), and the one warning when they do not."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], bool] = {}
        self._lock = threading.Lock()

    def possible(self, src_dev: int, dst_dev: int) -> bool:
        return self._known.get((src_dev, dst_dev), True)

    def learn(self, src_dev: int, dst_dev: int, works: bool, src: str, dst: str, error: OSError | None) -> None:
        """What the first file between two filesystems showed; one refused after others were reflinked is a file
        the filesystem will not share (Btrfs nodatacow), not a filesystem without reflinks."""
        key = (src_dev, dst_dev)
        if key in self._known:
            return
        with self._lock:
            first = key not in self._known
            if first:
                self._known[key] = works
        if first and not works:
            log.warning("thin clones are not possible here, so copies are full copies (their time and space grow "
                        "with production): %s; for copy-on-write clones put the state directory on the same XFS "
                        "(made with reflink=1, the mkfs.xfs default) or Btrfs filesystem as production",
                        _why_no_reflink(src, dst, src_dev, dst_dev, error))

    def forget(self) -> None:
        """Tests: learn again (a filesystem mounted anew can reuse a device number)."""
        with self._lock:
            self._known.clear()


REFLINKS = _Reflinks()


def _why_no_reflink(src: str, dst: str, src_dev: int, dst_dev: int, error: OSError | None) -> str:
    src_fs, dst_fs = filesystem_of(src), filesystem_of(dst)
    if src_dev != dst_dev:
        return f"{src} is on {src_fs[0]} at {src_fs[1]} and the copy {dst} on {dst_fs[0]} at {dst_fs[1]}, two " \
               "filesystems (a reflink stays within one)"
    reason = f" ({os.strerror(error.errno)})" if error is not None and error.errno else ""
    return f"{dst_fs[0]} at {dst_fs[1]}, which holds {src} and the copy {dst}, has no reflinks{reason}"


def filesystem_of(path: str | Path) -> tuple[str, str]:
    """(type, mount point) of the filesystem holding `path`, from /proc/self/mountinfo; ("unknown", "?") if unread."""
    target = os.path.realpath(path)
    best, best_length = ("unknown", "?"), -1
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                mount_point = fields[4].replace("\\040", " ")
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= best_length:  # the last mounted on a point hides earlier ones
                    best, best_length = (fields[fields.index("-") + 1], mount_point), len(mount_point)
    except (OSError, ValueError, IndexError):
        pass
    return best


def reflink(source: int, target: int, src: str, dst: str, src_dev: int | None = None) -> bool:
    """Make the open file `target` share all of `source`'s blocks (FICLONE); False where the filesystem cannot,
    which it learns once per pair of filesystems (REFLINKS) and says once in the log."""
    src_dev = os.fstat(source).st_dev if src_dev is None else src_dev
    dst_dev = os.fstat(target).st_dev
    if not REFLINKS.possible(src_dev, dst_dev):
        return False
    try:
        fcntl.ioctl(target, FICLONE, source)
    except OSError as exc:
        if exc.errno not in _NO_REFLINK_ERRNOS:
            raise
        REFLINKS.learn(src_dev, dst_dev, False, src, dst, exc)
        return False
    REFLINKS.learn(src_dev, dst_dev, True, src, dst, None)
    return True


def copy_file(src: Path | str, dst: Path | str) -> tuple[int, bool]:
    """Copy one regular file's bytes (a reflink where it can), mode and timestamps; returns the bytes copied and
    whether they were reflinked."""
    source = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        src_stat = os.fstat(source)  # here, on the worker thread: the walker only reads directory entries
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            thin = bool(src_stat.st_size) and reflink(source, target, str(src), str(dst), src_stat.st_dev)
            copied = src_stat.st_size if thin else _copy_bytes(source, target)
            os.fchmod(target, stat.S_IMODE(src_stat.st_mode))
            os.utime(target, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
        finally:
            os.close(target)
    finally:
        os.close(source)
    return copied, thin


def _copy_bytes(source: int, target: int) -> int:
    """Everything from `source` to `target` in the kernel; copy_file_range first, sendfile if refused."""
    copied = 0
    try:
        while True:
            count = os.copy_file_range(source, target, _CHUNK)
            if count == 0:
                return copied
            copied += count
    except OSError as exc:
        if exc.errno not in _FALLBACK_ERRNOS:
            raise
    while True:  # both descriptors sit where copy_file_range stopped
        count = os.sendfile(target, source, None, _CHUNK)
        if count == 0:
            return copied
        copied += count


def _copy_files(batch: list[tuple[str, str]]) -> tuple[int, int]:
    """Several files in one job: a reflink takes less time than handing a job to a thread and back."""
    copied = thin = 0
    for src, dst in batch:
        size, shared = copy_file(src, dst)
        copied, thin = copied + size, thin + shared
    return copied, thin


def copy_tree(src: Path, dst: Path, *, exclude: Callable[[str], bool] | None = None,
              workers: int = _WORKERS) -> CopyStats:
    """Copy `src` (a directory or one file) to `dst`, which must not exist yet.

    `exclude(relative_posix_path)` leaves out a file or a whole directory.
    """
    src, dst = Path(src), Path(dst)
    stats = CopyStats()
    top = os.lstat(src)
    if not stat.S_ISDIR(top.st_mode):
        dst.parent.mkdir(parents=True, exist_ok=True)
        _copy_entry(str(src), str(dst), top, stats)
        return stats
    directories: list[tuple[str, os.stat_result]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doppel-copy") as pool:
        jobs, batch, devices = [], [], None
        pending = [(str(src), str(dst), "")]
        while pending:
            source_dir, target_dir, relative = pending.pop()
            os.makedirs(target_dir, mode=0o700, exist_ok=not relative)  # the top may be made already
            devices = devices or (top.st_dev, os.stat(target_dir).st_dev)
            directories.append((target_dir, os.stat(source_dir)))
            with os.scandir(source_dir) as entries:
                for entry in entries:
                    rel = f"{relative}/{entry.name}" if relative else entry.name
                    if exclude and exclude(rel):
                        continue
                    target = os.path.join(target_dir, entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((entry.path, target, rel))
                    elif entry.is_file(follow_symlinks=False):
                        batch.append((entry.path, target))
                        stats.files += 1
                        # batched where reflinks work; a file per job where bytes are copied, so that large files
                        # copy side by side
                        if len(batch) >= (_BATCH if REFLINKS.possible(*devices) else 1):
                            jobs.append(pool.submit(_copy_files, batch))
                            batch = []
                    else:
                        _copy_entry(entry.path, target, entry.stat(follow_symlinks=False), stats)
        jobs.append(pool.submit(_copy_files, batch))
        for job in jobs:
            copied, thin = job.result()
            stats.bytes += copied
            stats.thin += thin
    for target_dir, source_stat in reversed(directories):
        os.chmod(target_dir, stat.S_IMODE(source_stat.st_mode))
        os.utime(target_dir, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
    return stats


def _copy_entry(src: str, dst: str, entry_stat: os.stat_result, stats: CopyStats) -> None:
    """A regular file or a symlink (copied as a link, never followed); anything else is skipped."""
    if stat.S_ISREG(entry_stat.st_mode):
        copied, thin = copy_file(src, dst)
        stats.bytes += copied
        stats.thin += thin
        stats.files += 1
    elif stat.S_ISLNK(entry_stat.st_mode):
        os.symlink(os.readlink(src), dst)
        os.utime(dst, ns=(entry_stat.st_atime_ns, entry_stat.st_mtime_ns), follow_symlinks=False)
        stats.files += 1
    else:
        stats.skipped += 1


def tree_size(path: Path) -> int:
    """Bytes in the regular files under `path` (or of `path` itself)."""
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_size if path.exists() else 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.stat(full).st_size
    return total
