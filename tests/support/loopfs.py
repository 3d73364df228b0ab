"""A filesystem of a chosen kind on a loop device, for tests and benches of thin clones.

A sparse file under /var/tmp, formatted (mkfs.xfs makes reflink=1 filesystems by
default) and mounted with `discard`, so files deleted inside give their blocks back
to the disk underneath; unmounted and deleted on the way out, whatever happened.
Needs root and the filesystem's tools (tests/services/xfs.sh installs xfsprogs);
`LoopUnavailable` says which is missing, for a test to skip on.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MKFS = {"xfs": ["mkfs.xfs", "-q", "-f"], "ext4": ["mkfs.ext4", "-q", "-F"]}


class LoopUnavailable(Exception):
    """This machine cannot make the loop filesystem (not root, no mkfs tool, no loop devices)."""


@contextmanager
def loop_filesystem(kind: str, size_bytes: int, under: str = "/var/tmp") -> Iterator[Path]:
    """A fresh `kind` filesystem of `size_bytes` (sparse: it takes only what is written) mounted at the path
    yielded."""
    if os.geteuid() != 0:
        raise LoopUnavailable("mounting a loop filesystem needs root")
    if shutil.which(MKFS[kind][0]) is None:
        raise LoopUnavailable(f"{MKFS[kind][0]} is not installed (tests/services/xfs.sh installs xfsprogs)")
    work = Path(tempfile.mkdtemp(prefix=f"doppel-{kind}-", dir=under))
    image, mount_point = work / f"{kind}.img", work / "mnt"
    mounted = False
    try:
        with open(image, "wb") as handle:
            handle.truncate(size_bytes)
        subprocess.run([*MKFS[kind], str(image)], check=True, capture_output=True)
        mount_point.mkdir()
        made = subprocess.run(["mount", "-o", "loop,discard", str(image), str(mount_point)], capture_output=True,
                              text=True)
        if made.returncode:
            raise LoopUnavailable(f"mount -o loop failed: {made.stderr.strip()}")
        mounted = True
        yield mount_point
    finally:
        if mounted and subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            # still busy (a file left open by a failed run): detach it now, the kernel frees it when closed
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
