"""A backup copied whole from one store to another: what a DR sync does on every cloud target.

The archive is streamed across with its sha256 and size checked against the manifest as it passes, the
manifest written last (it is what says "this backup is complete" in a store), then read back from the copy;
a copy that does not match is deleted and the sync retried. A backup the destination has already is kept.
"""
from __future__ import annotations

import hashlib

from clouds.backups.layout import manifest_key
from clouds.backups.manifests import BackupNotFound, find_backup
from core.cloud import DriverError
from core.stores import ChunkReader


class HashingReader(ChunkReader):
    """Chunks read as a file (what put_stream reads), hashing what passes."""

    def __init__(self, chunks, *algorithms: str):
        super().__init__(chunks)
        self.hashes = {name: hashlib.new(name) for name in algorithms}
        self.size = 0

    def _take(self, data: bytes) -> bytes:
        for digest in self.hashes.values():
            digest.update(data)
        self.size += len(data)
        return data

    def hex(self, name: str) -> str:
        return self.hashes[name].hexdigest()


def copy_backup(source, store, production: str, backup_id: str, env: str) -> str:
    """Make `backup_id` of `production` readable in `store`, read from `source`; says what was done."""
    try:
        find_backup(store, backup_id, production)
        return f"backup {backup_id} is readable in {store.name} already"
    except BackupNotFound:
        pass
    manifest = find_backup(source, backup_id, production)
    reader = HashingReader(source.get_stream(manifest.archive_key), "sha256")
    store.put_stream(manifest.archive_key, reader)
    if reader.hex("sha256") != manifest.sha256 or reader.size != manifest.size:
        store.delete(manifest.archive_key)
        raise DriverError(f"backup {backup_id} read from {source.name} does not match its manifest (sha256 "
                          f"{reader.hex('sha256')}, {reader.size} bytes); the copy to {store.name} is retried",
                          env=env)
    store.put_bytes(manifest_key(production, backup_id), manifest.to_json())  # last: it says "complete"
    copied = find_backup(store, backup_id, production)
    stored = {info.key: info.size for info in store.list(f"{production}/{backup_id}/")}
    if stored.get(copied.archive_key) != copied.size:
        raise DriverError(f"backup {backup_id} in {store.name} is {stored.get(copied.archive_key)} bytes, "
                          f"not {copied.size}; the copy is retried", env=env)
    return f"backup {backup_id} copied to {store.name} ({reader.size} bytes, sha256 checked)"
