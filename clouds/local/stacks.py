"""The local driver's stacks: an environment built from a snapshot, with its DNS record, made once per key.

A snapshot is a copy of its own (never hard links to production; reflinks where the
filesystem has them, see clouds.local.copying). Building the env it was taken for then
moves that copy into place instead of copying it again, so a clone costs one copy of
production, as `cp -a` does (and one reflink per file on XFS or Btrfs); the snapshot's record stays
(for find_tagged) and says which env took its data. A snapshot used for another env,
or any snapshot when `keep_snapshots=True`, is copied and stays whole.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from clouds.local import builds, state
from clouds.local.components import kind_of
from clouds.local.copying import copy_tree
from core.cloud import (
    CREATE_COMPLETE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    TAG_ENV,
    TAG_KEY,
    TAG_PRODUCTION,
    TAG_SNAPSHOT,
    DnsRecord,
    DriverError,
    ResourceConflict,
    ResourceMissing,
    Snapshot,
    Stack,
    env_tags,
    resource_name,
)


class StackVerbs:
    """The stack verbs of `LocalDriver` (clouds.local.driver), which gives them its state directory, its lock,
    its productions, its env names (`_env_dir`, `_new_env_name`), its snapshots' folders and its DNS records."""

    def create_stack(self, env: str, snapshot: Snapshot, parameters: dict, key: str) -> Stack:
        """Build `env` from `snapshot`: its files, its databases, its DNS record. Once per key."""
        self._new_env_name(env)
        spec = self._production(snapshot.production, env)
        final = self._env_dir(env)
        partial = final.with_name(final.name + builds.PARTIAL)
        snapshot_dir = self._snapshot_dir(snapshot.id)
        with state.locked(self._lock_file):
            found = self._read_stack(final, partial)
            if found is not None and found.status != CREATE_FAILED:
                if found.tags.get(TAG_KEY) != key:
                    raise ResourceConflict(
                        f"environment {env} already exists, made by another request; delete it first "
                        "(doppel env delete) or choose another name", env=env)
                return found
            recorded = state.read_json(snapshot_dir / "snapshot.json") or {}
            if found is not None and recorded.get("used_by") == env and (partial / "root").is_dir():
                # An interrupted build that had taken the snapshot's copy (a failed one gave it back): take it again.
                self._return_snapshot_copy(snapshot_dir, partial)
                recorded = state.read_json(snapshot_dir / "snapshot.json") or {}
            if not (snapshot_dir / "root").is_dir():
                why = f"its copy became env {recorded['used_by']}" if recorded.get("used_by") else \
                    "it was deleted, or is not complete"
                raise ResourceMissing(f"cannot build env {env} from snapshot {snapshot.id}: {why}; take a new "
                                      "snapshot", env=env)
            take_over = not self.keep_snapshots and recorded.get("env") == env
            shutil.rmtree(partial, ignore_errors=True)  # a failed or abandoned attempt: build again
            owner, cancel = state.start_build()
            tags = env_tags(env, key, **{TAG_PRODUCTION: snapshot.production, TAG_SNAPSHOT: snapshot.id})
            pending = Stack(id=resource_name("stack", env, key), name=env, env=env, status=CREATE_IN_PROGRESS,
                            tags=tags)
            partial.mkdir()
            state.write_json(partial / "owner.json", owner)
            state.write_json(partial / "tags.json", tags)
            self._write_stack(partial, pending, snapshot.production, parameters)
        return builds.run(self.background, lambda: self._build(pending, spec, snapshot_dir, take_over, parameters,
                                                               partial, final, cancel), owner, pending)

    def _build(self, pending: Stack, spec: Mapping, snapshot_dir: Path, take_over: bool, parameters: Mapping,
               partial: Path, final: Path, cancel: threading.Event) -> Stack:
        """Fill `partial` from the snapshot, register the DNS record, then rename it into place."""
        production = pending.tags[TAG_PRODUCTION]
        taken = False
        moved: list[Mapping] = []  # server databases renamed from the snapshot's
        try:
            def exclude(_relative: str) -> bool:
                if cancel.is_set():
                    raise builds.BuildCancelled()
                return False

            if take_over:
                taken = self._take_snapshot_copy(snapshot_dir, partial, pending.env, cancel)
            else:
                copy_tree(snapshot_dir / "root", partial / "root", exclude=exclude)
            for component in spec["components"]:
                if kind_of(component).on_server:
                    builds.check_still_ours(partial, cancel)
                    if kind_of(component).build(component, pending.tags[TAG_SNAPSHOT], pending.env, take_over):
                        moved.append(component)
            outputs = self._outputs(pending.env, spec, final / "root")
            done = replace(pending, status=CREATE_COMPLETE, outputs=outputs)
            self._write_stack(partial, done, production, parameters)
            with state.locked(self._lock_file):
                builds.check_still_ours(partial, cancel)
                self.dns.put(DnsRecord(name=outputs["dns_name"], type="A",
                                       value=str(parameters.get("address", "127.0.0.1")),
                                       ttl=int(parameters.get("dns_ttl", 60))), done.tags)
                (partial / "owner.json").unlink()
                os.rename(partial, final)
            return done
        except builds.BuildCancelled:
            raise DriverError(f"environment {pending.env} was deleted while it was being built",
                              env=pending.env) from None
        except Exception as exc:
            if taken:
                self._give_snapshot_copy_back(snapshot_dir, partial)
            for component in moved:
                kind_of(component).give_back(component, pending.tags[TAG_SNAPSHOT], pending.env)
            self._drop_databases(production, lambda kind, c: kind.drop_env(c, pending.env))
            reason = (f"building env {pending.env} from snapshot {pending.tags[TAG_SNAPSHOT]} failed: "
                      f"{builds.describe(exc)}")
            failed = replace(pending, status=CREATE_FAILED, status_reason=reason)
            builds.record_failure(partial, lambda: self._write_stack(partial, failed, production, parameters))
            raise DriverError(f"{reason}; create_stack with the same key rebuilds it, delete_stack removes it",
                              env=pending.env) from exc

    def _take_snapshot_copy(self, snapshot_dir: Path, partial: Path, env: str, cancel: threading.Event) -> bool:
        """Move the snapshot's copy into the env being built (one rename), noting it in the snapshot."""
        with state.locked(self._lock_file):
            builds.check_still_ours(partial, cancel)
            # Recorded first: a builder killed between the two steps leaves the copy where the record says, so a
            # rebuild finds it (see create_stack), never a snapshot without its copy and without saying where.
            record = state.read_json(snapshot_dir / "snapshot.json")
            record.update(used_by=env, status_reason=f"its copy became env {env} (moved, not copied)")
            state.write_json(snapshot_dir / "snapshot.json", record)
            os.rename(snapshot_dir / "root", partial / "root")
        return True

    def _give_snapshot_copy_back(self, snapshot_dir: Path, partial: Path) -> None:
        """Undo a take-over after a failed build, so a retry has its snapshot again."""
        with state.locked(self._lock_file):
            self._return_snapshot_copy(snapshot_dir, partial)

    @staticmethod
    def _return_snapshot_copy(snapshot_dir: Path, partial: Path) -> None:
        """Move a taken-over copy back into its snapshot (caller holds the lock)."""
        if (partial / "root").is_dir() and snapshot_dir.is_dir() and not (snapshot_dir / "root").exists():
            os.rename(partial / "root", snapshot_dir / "root")
            record = state.read_json(snapshot_dir / "snapshot.json")
            record.pop("used_by", None)
            record["status_reason"] = ""
            state.write_json(snapshot_dir / "snapshot.json", record)

    def _outputs(self, env: str, spec: Mapping, env_root: Path) -> dict:
        """The new environment's endpoints: where it lives, its URL, each database's path and URL."""
        dns_name = f"{env}.{spec['domain']}"
        outputs: dict[str, Any] = {"env": env, "root": str(env_root), "base_url": f"http://{dns_name}",
                                   "dns_name": dns_name}
        for component in spec["components"]:
            outputs.update(kind_of(component).outputs(component, env_root, env))
        return outputs

    def _drop_databases(self, production: str | None, drop) -> None:
        """Drop the server databases a snapshot or env of `production` made (nothing when it is not configured)."""
        spec = self.productions.get(production or "")
        for component in spec["components"] if spec else ():
            if kind_of(component).on_server:
                drop(kind_of(component), component)

    def _write_stack(self, folder: Path, stack: Stack, production: str, parameters: Mapping) -> None:
        state.write_json(folder / "stack.json", {"stack": stack.to_dict(), "production": production,
                                                 "parameters": dict(parameters)})

    def stack_status(self, env: str) -> Stack | None:
        final = self._env_dir(env)
        partial = final.with_name(final.name + builds.PARTIAL)
        return builds.read_status(lambda: self._read_stack(final, partial), self._lock_file, CREATE_FAILED)

    def _read_stack(self, final: Path, partial: Path) -> Stack | None:
        data = state.read_json(final / "stack.json")
        if data:
            return Stack.from_dict(data["stack"])
        data = state.read_json(partial / "stack.json")
        if not data:
            return None
        found = Stack.from_dict(data["stack"])
        if builds.interrupted(found.status, CREATE_IN_PROGRESS, CREATE_COMPLETE, partial):
            return replace(found, status=CREATE_FAILED,
                           status_reason="interrupted: the worker building it stopped; create_stack with the same "
                                         "key rebuilds it, delete_stack removes it")
        if found.status == CREATE_COMPLETE:  # recorded complete, not yet renamed into place: not usable yet
            return replace(found, status=CREATE_IN_PROGRESS)
        return found

    def delete_stack(self, env: str, ignore_missing: bool = True) -> None:
        """Remove the environment's directory (whole or half-made) and its DNS records.

        The snapshot it was built from is a separate resource (delete_snapshot, or
        find_tagged on the env and delete_resource).
        """
        final = self._env_dir(env)
        partial = final.with_name(final.name + builds.PARTIAL)
        record = state.read_json(final / "stack.json") or state.read_json(partial / "stack.json")
        if record:
            self._drop_databases(record.get("production"), lambda kind, c: kind.drop_env(c, env))
        with state.locked(self._lock_file):
            doomed = builds.set_aside(final, partial)
            records = self.dns.drop({TAG_ENV: env})
        if not doomed and not records and not ignore_missing:
            raise ResourceMissing(f"there is no environment {env} to delete", env=env)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
