"""Backups as functions see them (`deps.backups`): back up, restore, verify, prune, list.

Ties the configured object store (Swift, S3, a directory; by default the cloud
driver's own) to the archive format in `clouds.backups` and the catalogue.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from clouds import backups as archive
from clouds.backups.retention import RetentionPolicy
from clouds.backups.write import source_size
from core.catalogue import Catalogue

log = logging.getLogger(__name__)


class ProgressLog:
    """Logs bytes, share of the total and rate of a long transfer every few seconds."""

    def __init__(self, what: str, total: int | None = None, every: float = 5.0):
        self.what, self.total, self.every, self._last = what, total, every, time.monotonic()

    def __call__(self, done: int, rate: float) -> None:
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            share = f" of {self.total / 1e6:.1f} MB ({min(100, 100 * done // self.total)}%)" if self.total else ""
            log.info("%s: %.1f MB%s, %.1f MB/s", self.what, done / 1e6, share, rate / 1e6)


class Backups:
    def __init__(self, store, catalogue: Catalogue, *, compression: str = "zstd",
                 retention: RetentionPolicy | None = None, progress=None, on_backup=None):
        """`on_backup(env, bytes, seconds)` is told of each backup made (the process's metrics)."""
        self.store, self.catalogue = store, catalogue
        self.on_backup = on_backup
        self.compression = compression
        self.retention = retention or RetentionPolicy(keep_last=7, daily=7, weekly=4, monthly=6)
        self.progress = progress  # a factory: (what, total bytes) -> callback(bytes, rate), for the CLI's display

    def _progress(self, what: str, total: int | None):
        return self.progress(what, total) if self.progress else ProgressLog(what, total)

    def back_up(self, env: str, source, *, reason: str, backup_id: str | None = None,
                now: datetime | None = None):
        started = time.monotonic()
        manifest = archive.write_backup(self.store, env, source, compression=self.compression,
                                        backup_id=backup_id, now=now,
                                        progress=self._progress(f"backup of {env}", source_size(source)))
        self.catalogue.record(manifest, self.store.name, reason)
        if self.on_backup is not None:
            self.on_backup(env, manifest.size, time.monotonic() - started)
        return manifest

    def find(self, backup_id: str, env: str | None = None):
        entry = self.catalogue.get(backup_id)
        return archive.find_backup(self.store, backup_id, env or (entry.env if entry else None))

    def restore(self, backup_id: str, target: Path, env: str | None = None, databases=None):
        manifest = self.find(backup_id, env)
        return archive.restore(self.store, manifest, target, progress=self._progress(f"restore of {backup_id}",
                                                                                       manifest.size),
                               databases=databases)

    def verify(self, backup_id: str, env: str | None = None, scratch_dir: Path | None = None):
        manifest = self.find(backup_id, env)
        result = archive.verify(self.store, manifest, scratch_dir=scratch_dir,
                                progress=self._progress(f"verify of {backup_id}", manifest.size))
        self.catalogue.verified(manifest.backup_id, result.ok, str(result))
        return result

    def prune(self, env: str, *, dry_run: bool = False, now: datetime | None = None):
        result = archive.prune(self.store, env, self.retention, now=now or datetime.now(timezone.utc),
                               verified=self.catalogue.verified_ids(env), dry_run=dry_run)
        if not dry_run and result.removed:
            self.catalogue.deleted(m.backup_id for m in result.removed)
        return result

    def list(self, env: str | None = None):
        return self.catalogue.list(env)

    def newest(self, env: str, *, verified_only: bool = False):
        return self.catalogue.newest(env, verified_only=verified_only)

    def sync(self) -> int:
        """Rebuild the catalogue from the store's manifests; returns how many backups it holds."""
        manifests = archive.list_backups(self.store)
        for manifest in manifests:
            self.catalogue.record(manifest, self.store.name, None)
        present = {m.backup_id for m in manifests}
        gone = [e.id for e in self.catalogue.list() if e.id not in present]
        if gone:
            self.catalogue.deleted(gone)
        return len(manifests)
