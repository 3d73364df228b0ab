"""The local driver's snapshots: a consistent, full copy of a production's components, made once per key.

A snapshot is a copy of its own (never hard links to production), taken in
`snapshots/<id>.partial/` and renamed into place when whole. Where the filesystem has
reflinks (XFS, Btrfs: clouds.local.copying) its files and SQLite databases share
production's blocks until either side writes, so a snapshot per request costs
milliseconds whatever production's size; elsewhere it is a full copy. Databases are
copied while the files copy.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from clouds.local import builds, state
from clouds.local.components import copy_roots, kind_of
from core.cloud import (
    SNAPSHOT_COMPLETE,
    SNAPSHOT_FAILED,
    SNAPSHOT_IN_PROGRESS,
    TAG_PRODUCTION,
    ComponentSnapshot,
    DriverError,
    ResourceMissing,
    Snapshot,
    env_tags,
    resource_name,
)


class SnapshotVerbs:
    """The snapshot verbs of `LocalDriver` (clouds.local.driver), which gives them its state directory, its
    lock, its productions (`_production`, `_production_root`, `_check_components`) and env names."""

    def _snapshot_dir(self, snapshot_id: str) -> Path:
        if "/" in snapshot_id or snapshot_id.startswith("."):
            raise ResourceMissing(f"{snapshot_id!r} is not a snapshot id of the local driver")
        return self.state_dir / "snapshots" / snapshot_id

    def snapshot(self, production: str, env: str, key: str, restore: Callable[[Path, dict], object] | None = None
                 ) -> Snapshot:
        """A consistent copy of the production's components, made once per key.

        With `restore`, the copy is made from a backup instead: `restore(root, databases)` writes
        the backup's files into `root` and its server databases where `databases` says (the
        snapshot's own databases), as `Backups.restore` does.
        """
        self._new_env_name(env)
        spec = self._production(production, env)
        source_root = self._production_root(production, spec, env)
        self._check_components(production, spec, source_root, env)
        snapshot_id = resource_name("snap", env, key)
        final = self._snapshot_dir(snapshot_id)
        partial = final.with_name(final.name + builds.PARTIAL)
        with state.locked(self._lock_file):
            found = self._read_snapshot(final, partial)
            if found is not None and found.status != SNAPSHOT_FAILED:
                return found
            shutil.rmtree(partial, ignore_errors=True)  # a failed or abandoned attempt: start again
            owner, cancel = state.start_build()
            pending = Snapshot(id=snapshot_id, production=production, env=env,
                               created=datetime.now(UTC), status=SNAPSHOT_IN_PROGRESS,
                               tags=env_tags(env, key, **{TAG_PRODUCTION: production}))
            partial.mkdir()
            state.write_json(partial / "owner.json", owner)
            state.write_json(partial / "tags.json", pending.tags)
            state.write_json(partial / "snapshot.json", pending.to_dict())
        return builds.run(self.background, lambda: self._capture(pending, spec, source_root, partial, final, cancel,
                                                                 restore), owner, pending)

    def _capture(self, pending: Snapshot, spec: Mapping, source_root: Path, partial: Path, final: Path,
                 cancel: threading.Event, restore: Callable[[Path, dict], object] | None = None) -> Snapshot:
        """Copy every component into `partial`, then make it the snapshot in one rename."""
        try:
            if restore is None:
                components = self._capture_components(spec, source_root, partial / "root", final / "root", cancel,
                                                      pending.id)
            else:
                components = self._restore_components(spec, partial / "root", final / "root", pending.id, restore)
            done = replace(pending, components=components, status=SNAPSHOT_COMPLETE)
            state.write_json(partial / "snapshot.json", done.to_dict())
            with state.locked(self._lock_file):
                builds.check_still_ours(partial, cancel)
                (partial / "owner.json").unlink()
                os.rename(partial, final)
            return done
        except builds.BuildCancelled:
            raise DriverError(f"snapshot {pending.id} was deleted while it was being taken", env=pending.env) from None
        except Exception as exc:
            reason = f"snapshot of production {pending.production} for env {pending.env} failed: {builds.describe(exc)}"
            failed = replace(pending, status=SNAPSHOT_FAILED, status_reason=reason)
            self._drop_databases(pending.production, lambda kind, c: kind.drop_snapshot(c, pending.id))
            builds.record_failure(partial, lambda: state.write_json(partial / "snapshot.json", failed.to_dict()))
            raise DriverError(f"{reason}; it is retried from scratch with the same key", env=pending.env) from exc

    def _capture_components(self, spec: Mapping, source_root: Path, target_root: Path, final_root: Path,
                            cancel: threading.Event, snapshot_id: str) -> tuple[ComponentSnapshot, ...]:
        target_root.mkdir()
        components = spec["components"]
        own_files = {path for c in components for path in kind_of(c).own_files(c)}

        def exclude(relative: str) -> bool:
            if cancel.is_set():
                raise builds.BuildCancelled()
            return relative in own_files

        sizes: dict[str, int] = {}
        databases = [c for c in components if kind_of(c).holds_data]
        on_server = {}
        # Databases are backed up while the files copy: the time of a clone is the time of its largest part.
        with ThreadPoolExecutor(max_workers=max(1, len(databases)), thread_name_prefix="doppel-db") as pool:
            backups = {c["path"]: pool.submit(kind_of(c).capture, c, source_root, target_root, exclude)
                       for c in databases if not kind_of(c).on_server}
            copies = {c["name"]: pool.submit(kind_of(c).capture_database, c, snapshot_id)
                      for c in databases if kind_of(c).on_server}
            for component in copy_roots(components):
                sizes[component["path"]] = kind_of(component).capture(component, source_root, target_root, exclude)
            sizes.update({path: job.result() for path, job in backups.items()})
            on_server = {name: job.result() for name, job in copies.items()}
        return tuple(ComponentSnapshot(kind=c["kind"], name=c["name"], location=on_server[c["name"]][0],
                                       size=on_server[c["name"]][1]) if kind_of(c).on_server else
                     ComponentSnapshot(kind=c["kind"], name=c["name"], location=str(final_root / c["path"]),
                                       size=sizes[c["path"]] if c["path"] in sizes else kind_of(c).size(c, target_root))
                     for c in components)

    def _restore_components(self, spec: Mapping, target_root: Path, final_root: Path, snapshot_id: str,
                            restore: Callable[[Path, dict], object]) -> tuple[ComponentSnapshot, ...]:
        """The components as a backup holds them: its files into the snapshot's root, its databases into the
        snapshot's own."""
        servers = [c for c in spec["components"] if kind_of(c).on_server]
        restore(target_root, {c["name"]: kind_of(c).snapshot_target(c, snapshot_id) for c in servers})
        return tuple(ComponentSnapshot(kind=c["kind"], name=c["name"], location=kind_of(c).snapshot_location(
            c, snapshot_id)) if kind_of(c).on_server else
            ComponentSnapshot(kind=c["kind"], name=c["name"], location=str(final_root / c["path"]),
                              size=kind_of(c).size(c, target_root)) for c in spec["components"])

    def snapshot_status(self, snapshot_id: str) -> Snapshot:
        final = self._snapshot_dir(snapshot_id)
        partial = final.with_name(final.name + builds.PARTIAL)
        found = builds.read_status(lambda: self._read_snapshot(final, partial), self._lock_file, SNAPSHOT_FAILED)
        if found is None:
            raise ResourceMissing(f"there is no snapshot {snapshot_id}; take a new one")
        return found

    def _read_snapshot(self, final: Path, partial: Path) -> Snapshot | None:
        data = state.read_json(final / "snapshot.json")
        if data:
            return Snapshot.from_dict(data)
        data = state.read_json(partial / "snapshot.json")
        if not data:
            return None
        found = Snapshot.from_dict(data)
        if builds.interrupted(found.status, SNAPSHOT_IN_PROGRESS, SNAPSHOT_COMPLETE, partial):
            return replace(found, status=SNAPSHOT_FAILED,
                           status_reason="interrupted: the worker taking it stopped; snapshot again with the same "
                                         "key to start over")
        if found.status == SNAPSHOT_COMPLETE:  # recorded complete, not yet renamed into place: not usable yet
            return replace(found, status=SNAPSHOT_IN_PROGRESS)
        return found

    def delete_snapshot(self, snapshot_id: str, ignore_missing: bool = True) -> None:
        final = self._snapshot_dir(snapshot_id)
        partial = final.with_name(final.name + builds.PARTIAL)
        record = state.read_json(final / "snapshot.json") or state.read_json(partial / "snapshot.json")
        if record:
            self._drop_databases(record.get("production"), lambda kind, c: kind.drop_snapshot(c, snapshot_id))
        with state.locked(self._lock_file):
            doomed = builds.set_aside(final, partial)
        if not doomed and not ignore_missing:
            raise ResourceMissing(f"there is no snapshot {snapshot_id} to delete")
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
