"""Restoring a backup into a directory, whole or not at all.

The archive is extracted (extract.py) into a staging directory beside the
target, which becomes the target only when the sha256 and size match. Server
databases (PostgreSQL, MariaDB) stream into new databases where `databases` says
(server_restore.py); one that fails is dropped, and the restore fails.
docs/restore-by-hand.md shows how to do the same with the swift or aws CLI,
zstd, tar and sha256sum.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from clouds.backups.extract import extract
from clouds.backups.layout import Manifest
from clouds.backups.manifests import find_backup
from clouds.backups.pipe import Progress
from clouds.backups.server_restore import DatabaseRestores, targets_for
from clouds.databases import engine
from clouds.databases.servers import DatabaseError
from core.stores import ObjectStore


def restore(store: ObjectStore, backup: str | Manifest, target_dir: Path, *, env: str | None = None,
            progress: Progress | None = None, databases: Mapping[str, Mapping] | None = None) -> Manifest:
    """Restore a backup into `target_dir` (absent or empty), whole or not at all.

    Extracts into a staging directory beside the target and renames it into place
    only once the archive's sha256 and size match the manifest; SQLite databases
    are then checkpointed, so each is one self-contained file again.
    """
    manifest = backup if isinstance(backup, Manifest) else find_backup(store, backup, env)
    sinks = DatabaseRestores(manifest, targets_for(manifest, databases or {})) if manifest.server_databases else None
    target = Path(target_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"restore of backup {manifest.backup_id}: {target} exists and is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.restoring-{manifest.backup_id}"
    shutil.rmtree(staging, ignore_errors=True)     # left by a restore that crashed
    try:
        try:
            extract(store, manifest, staging, progress, divert=sinks)
        finally:
            if sinks is not None:
                sinks.finish()
        if sinks is not None and (sinks.failures or sinks.missing()):
            for name in sinks.finished:
                server, database = sinks.targets[name]
                engine(server.engine).drop(server, database)
            raise DatabaseError(f"restore of backup {manifest.backup_id}: " + "; ".join(
                [*sinks.failures.values(), *(f"database {name} is not in the archive" for name in sinks.missing())]))
        _checkpoint_databases(manifest, staging)
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _checkpoint_databases(manifest: Manifest, root: Path) -> None:
    for database in manifest.databases:
        conn = sqlite3.connect(root / database.name)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
