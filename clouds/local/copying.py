"""Copying trees of files as `cp -a` does, and at least as fast.

Real copies (no hard links: a clone must never share an inode with production),
made by the kernel (`copy_file_range`, which also reflinks on filesystems that can,
falling back to `sendfile`), several files at once on a thread pool, keeping mode,
timestamps and symlinks. Directory timestamps are set last, deepest first, since
writing into a directory changes its mtime.
"""
from __future__ import annotations

import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

_CHUNK = 1 << 30
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.ETXTBSY}
_WORKERS = max(4, min(16, 4 * (os.cpu_count() or 1)))


@dataclass
class CopyStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # sockets, fifos, devices: not application files


def copy_file(src: Path | str, dst: Path | str) -> int:
    """Copy one regular file's bytes, mode and timestamps; returns the bytes copied."""
    source = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        src_stat = os.fstat(source)  # here, on the worker thread: the walker only reads directory entries
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            copied = _copy_bytes(source, target)
            os.fchmod(target, stat.S_IMODE(src_stat.st_mode))
            os.utime(target, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
        finally:
            os.close(target)
    finally:
        os.close(source)
    return copied


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
        jobs = []
        pending = [(str(src), str(dst), "")]
        while pending:
            source_dir, target_dir, relative = pending.pop()
            os.makedirs(target_dir, mode=0o700, exist_ok=not relative)  # the top may be made already
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
                        jobs.append(pool.submit(copy_file, entry.path, target))
                        stats.files += 1
                    else:
                        _copy_entry(entry.path, target, entry.stat(follow_symlinks=False), stats)
        for job in jobs:
            stats.bytes += job.result()
    for target_dir, source_stat in reversed(directories):
        os.chmod(target_dir, stat.S_IMODE(source_stat.st_mode))
        os.utime(target_dir, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
    return stats


def _copy_entry(src: str, dst: str, entry_stat: os.stat_result, stats: CopyStats) -> None:
    """A regular file or a symlink (copied as a link, never followed); anything else is skipped."""
    if stat.S_ISREG(entry_stat.st_mode):
        stats.bytes += copy_file(src, dst)
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
