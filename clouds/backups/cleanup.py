"""Housekeeping of a backup store: prune by retention policy, remove what interrupted backups left.

An interrupted backup leaves one of two things: segments or multipart-upload
parts with no object yet (the process died mid-upload), or a complete archive
object with no manifest (it died between the two). Neither is ever listed as a
backup. Both are removed here, but only after a grace period, so a backup still
being written is never cut from under its writer.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from clouds.backups.layout import MANIFEST_NAME, Manifest, backup_time, check_env, split_key
from clouds.backups.manifests import delete_backup, list_backups
from clouds.backups.retention import RetentionPolicy, select_to_keep
from core.stores import ObjectStore

log = logging.getLogger(__name__)

_PARALLEL_DELETES = 4         # a first prune after months can remove hundreds of backups


@dataclass
class PruneResult:
    kept: list[Manifest] = field(default_factory=list)
    removed: list[Manifest] = field(default_factory=list)

    def summary(self) -> dict:
        return {"kept": [m.backup_id for m in self.kept], "removed": [m.backup_id for m in self.removed]}


@dataclass(frozen=True)
class _Candidate:
    manifest: Manifest
    created: datetime
    verified: bool
    backup_id: str


def prune(store: ObjectStore, env: str, policy: RetentionPolicy, *, now: datetime | None = None,
          verified: set[str] | frozenset[str] = frozenset(), dry_run: bool = False) -> PruneResult:
    """Delete the complete backups of `env` the policy does not keep; `verified` are ids proven to restore."""
    now = now or datetime.now(timezone.utc)
    candidates = [_Candidate(m, m.created, m.backup_id in verified, m.backup_id)
                  for m in list_backups(store, check_env(env))]
    keep, remove = select_to_keep(candidates, policy, now)
    result = PruneResult(kept=[c.manifest for c in keep], removed=[c.manifest for c in remove])
    if not dry_run:
        with ThreadPoolExecutor(_PARALLEL_DELETES, thread_name_prefix="prune") as pool:
            list(pool.map(lambda manifest: _delete(store, manifest), result.removed))
    return result


def _delete(store: ObjectStore, manifest: Manifest) -> None:
    delete_backup(store, manifest)
    log.info("pruned backup %s of %s from %s", manifest.backup_id, manifest.env, store.name)


def remove_incomplete(store: ObjectStore, *, env: str | None = None, grace: timedelta = timedelta(hours=1),
                      now: datetime | None = None) -> list[str]:
    """Remove the leftovers of interrupted backups; returns what was removed.

    Archives without a manifest go once the archive is older than `grace` (its
    upload finished that long ago and no manifest followed). Segments and pending
    uploads are removed by the store's own `cleanup_orphans`, which waits until
    they have been idle for the store's `orphan_grace`.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    prefix = f"{check_env(env)}/" if env else ""
    removed = []
    for objects in _backups_without_manifest(store, prefix).values():
        if all(_finished_before(info, now - grace) for info in objects):
            for info in objects:
                store.delete(info.key)
                removed.append(info.key)
    removed.extend(store.cleanup_orphans(prefix))
    if removed:
        log.info("%s: removed %d leftover object(s) of interrupted backups", store.name, len(removed))
    return removed


def _backups_without_manifest(store: ObjectStore, prefix: str) -> dict[tuple[str, str], list]:
    groups: dict[tuple[str, str], list] = defaultdict(list)
    complete = set()
    for info in store.list(prefix):
        parts = split_key(info.key)
        if parts is None:
            continue                      # not in the backup layout: not ours to judge
        groups[parts[:2]].append(info)
        if parts[2] == MANIFEST_NAME:
            complete.add(parts[:2])
    return {k: v for k, v in groups.items() if k not in complete}


def _finished_before(info, cutoff: datetime) -> bool:
    """An object's own time if the store gives one, else the backup's start time from its id."""
    when = info.modified or backup_time(split_key(info.key)[1])
    return when.astimezone(timezone.utc) <= cutoff
