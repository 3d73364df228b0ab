"""Run by the kill -9 test in a subprocess: a backup uploaded slowly, reporting progress, until it is killed.

    python interrupted_backup.py swift|s3 <container-or-bucket> <source dir> <env>

Prints "uploaded <bytes>" as segments land, so the test knows when the upload
is well under way. Never finishes on its own in time: the test kills it.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from swift_service import make_s3_store, make_swift_store

from clouds.backups import write_backup
from clouds.stores.s3 import S3Store
from clouds.stores.swift import SwiftStore
from core.cloud import BackupSource


class Slow:
    """Feeds the upload at ~3 MB/s so there is time to kill it mid-way."""

    def __init__(self, stream):
        self._stream = stream

    def readinto(self, buffer) -> int:
        time.sleep(0.02)
        return self._stream.readinto(memoryview(buffer)[:64 * 1024])


class SlowSwift(SwiftStore):
    def __init__(self, container: str):
        vars(self).update(vars(make_swift_store(container)))

    def put_stream(self, key, stream, *, progress=None):
        return super().put_stream(key, Slow(stream), progress=progress)


class SlowS3(S3Store):
    def __init__(self, bucket: str):
        vars(self).update(vars(make_s3_store(bucket)))

    def put_stream(self, key, stream, *, progress=None):
        return super().put_stream(key, Slow(stream), progress=progress)


def main(kind: str, bucket: str, source: str, env: str) -> None:
    store = SlowSwift(bucket) if kind == "swift" else SlowS3(bucket)
    write_backup(store, env, BackupSource(root=Path(source)),
                 progress=lambda done, rate: print(f"uploaded {done}", flush=True))
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
