"""Finding complete backups in a store by their manifests: list them, find one, delete one.

A backup is complete once its manifest is stored (write.py writes it last); one
without a manifest is never listed here, and cleanup.py removes it later.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from clouds.backups.layout import MANIFEST_NAME, Manifest, ManifestError, check_env, manifest_key, split_key
from core.stores import ObjectMissing, ObjectStore

log = logging.getLogger(__name__)

_PARALLEL_REQUESTS = 8        # small requests in flight at once when listing or pruning many backups


class BackupNotFound(LookupError):
    """No complete backup with that id (it may be incomplete: no manifest)."""


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

