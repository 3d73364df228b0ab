"""The embedded cloud: productions are directories on this machine, and so are their doubles.

State directory layout (everything Doppel makes lives here, never in production):

    snapshots/<id>/            snapshot.json, tags.json, root/ (the captured components)
    envs/<env>/                stack.json, tags.json, configure.json, root/ (the environment)
    <either>.partial/          a build under way (owner.json names its builder) or failed
    dns.json                   the DNS records
    objects/                   the default object store (backups)
    .lock                      held while a decision reads-then-writes

Snapshots and stacks complete before the call returns, unless `background=True`:
then they return IN_PROGRESS and finish on a thread, as a Heat stack or a Cinder
snapshot would, and `stack_status` / `snapshot_status` tell when they are done.

A snapshot is a full, real copy (never hard links to production). Building the env
it was taken for then moves that copy into place instead of copying it again, so a
clone costs one copy of production, as `cp -a` does; the snapshot's record stays
(for find_tagged) and says which env took its data. A snapshot used for another env,
or any snapshot when `keep_snapshots=True`, is copied and stays whole.
"""
from __future__ import annotations

import os
import secrets as _secrets
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from clouds.base import (
    CREATE_COMPLETE, CREATE_FAILED, CREATE_IN_PROGRESS, SNAPSHOT_COMPLETE, SNAPSHOT_FAILED, SNAPSHOT_IN_PROGRESS,
    TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT, BackupSource, ComponentSnapshot, DnsRecord, DriverError,
    ResourceConflict, ResourceMissing, Snapshot, Stack, TaggedResource, configurable_stack, env_tags, resource_name,
    tags_match)
from clouds.local import state
from clouds.local.components import copy_roots, kind_of
from clouds.local.configure import apply_clone_policy
from clouds.local.copying import copy_tree
from clouds.local.sqlite import SIDE_SUFFIXES
from schemas.production import ProductionConfigError, load_productions

PARTIAL = ".partial"
DNS_KIND, STACK_KIND, SNAPSHOT_KIND = "dns_record", "stack", "snapshot"


class BuildCancelled(Exception):
    """The resource being built was deleted meanwhile."""


class LocalDriver:
    """The `CloudDriver` for productions that are directories on this host."""

    name = "local"

    def __init__(self, state_dir: Path, productions: Mapping, *, background: bool = False,
                 keep_snapshots: bool = False):
        try:
            self.productions = load_productions(productions)
        except ProductionConfigError as exc:
            raise DriverError(f"the productions section of the config is wrong: {exc}", permanent=True) from None
        self.state_dir = Path(state_dir).resolve()
        self.background = background
        self.keep_snapshots = keep_snapshots
        for folder in ("snapshots", "envs"):
            (self.state_dir / folder).mkdir(parents=True, exist_ok=True)
        self._lock_file = self.state_dir / ".lock"
        self._store = None

    # --- productions ------------------------------------------------------------------

    def _production(self, name: str, env: str | None = None) -> dict:
        """The production's config entry, checked to be one this driver can copy."""
        spec = self.productions.get(name)
        if spec is None:
            known = ", ".join(sorted(self.productions)) or "none"
            raise DriverError(f"there is no production named {name!r} in doppel.yaml (known: {known})",
                              env=env, permanent=True)
        if spec["driver"] != "local":
            raise DriverError(f"production {name} uses the {spec['driver']} driver, not local; "
                              "run it with that driver", env=env, permanent=True)
        return spec

    def _production_root(self, name: str, spec: Mapping, env: str | None) -> Path:
        root = Path(spec["path"]).resolve()
        if not root.is_dir():
            raise DriverError(f"production {name}'s directory {root} does not exist; fix productions.{name}.path "
                              "in doppel.yaml", env=env, permanent=True)
        if self.state_dir == root or root in self.state_dir.parents:
            raise DriverError(f"the state directory {self.state_dir} is inside production {name}'s directory "
                              f"{root}, so copies would copy themselves; move state_dir out of it",
                              env=env, permanent=True)
        return root

    def _check_components(self, name: str, spec: Mapping, root: Path, env: str) -> None:
        """Every component is one this driver handles, and is there to be copied."""
        for index, component in enumerate(spec["components"]):
            try:
                kind_of(component)
            except LookupError as exc:
                raise DriverError(f"production {name}: {exc}", env=env, permanent=True) from None
            if not (root / component["path"]).exists():
                raise DriverError(f"production {name}: component {index} ({component['kind']} "
                                  f"{component['path']}) is not in {root}; fix productions.{name}.components in "
                                  "doppel.yaml, or restore it", env=env, permanent=True)

    # --- snapshots --------------------------------------------------------------------

    def _snapshot_dir(self, snapshot_id: str) -> Path:
        if "/" in snapshot_id or snapshot_id.startswith("."):
            raise ResourceMissing(f"{snapshot_id!r} is not a snapshot id of the local driver")
        return self.state_dir / "snapshots" / snapshot_id

    def snapshot(self, production: str, env: str, key: str) -> Snapshot:
        """A consistent copy of the production's components, made once per key."""
        self._new_env_name(env)
        spec = self._production(production, env)
        source_root = self._production_root(production, spec, env)
        self._check_components(production, spec, source_root, env)
        snapshot_id = resource_name("snap", env, key)
        final = self._snapshot_dir(snapshot_id)
        partial = final.with_name(final.name + PARTIAL)
        with state.locked(self._lock_file):
            found = self._read_snapshot(final, partial)
            if found is not None and found.status != SNAPSHOT_FAILED:
                return found
            shutil.rmtree(partial, ignore_errors=True)  # a failed or abandoned attempt: start again
            owner, cancel = state.start_build()
            pending = Snapshot(id=snapshot_id, production=production, env=env,
                               created=datetime.now(timezone.utc), status=SNAPSHOT_IN_PROGRESS,
                               tags=env_tags(env, key, **{TAG_PRODUCTION: production}))
            partial.mkdir()
            state.write_json(partial / "owner.json", owner)
            state.write_json(partial / "tags.json", pending.tags)
            state.write_json(partial / "snapshot.json", pending.to_dict())
        return self._run(lambda: self._capture(pending, spec, source_root, partial, final, cancel), owner, pending)

    def _capture(self, pending: Snapshot, spec: Mapping, source_root: Path, partial: Path, final: Path,
                 cancel: threading.Event) -> Snapshot:
        """Copy every component into `partial`, then make it the snapshot in one rename."""
        try:
            components = self._capture_components(spec, source_root, partial / "root", final / "root", cancel)
            done = replace(pending, components=components, status=SNAPSHOT_COMPLETE)
            state.write_json(partial / "snapshot.json", done.to_dict())
            with state.locked(self._lock_file):
                self._check_still_ours(partial, cancel)
                (partial / "owner.json").unlink()
                os.rename(partial, final)
            return done
        except BuildCancelled:
            raise DriverError(f"snapshot {pending.id} was deleted while it was being taken", env=pending.env)
        except Exception as exc:
            reason = f"snapshot of production {pending.production} for env {pending.env} failed: {_describe(exc)}"
            failed = replace(pending, status=SNAPSHOT_FAILED, status_reason=reason)
            self._record_failure(partial, lambda: state.write_json(partial / "snapshot.json", failed.to_dict()))
            raise DriverError(f"{reason}; it is retried from scratch with the same key", env=pending.env) from exc

    def _capture_components(self, spec: Mapping, source_root: Path, target_root: Path, final_root: Path,
                            cancel: threading.Event) -> tuple[ComponentSnapshot, ...]:
        target_root.mkdir()
        components = spec["components"]
        own_files = {path for c in components for path in kind_of(c).own_files(c)}

        def exclude(relative: str) -> bool:
            if cancel.is_set():
                raise BuildCancelled()
            return relative in own_files

        sizes: dict[str, int] = {}
        databases = [c for c in components if kind_of(c).holds_data]
        # Databases are backed up while the files copy: the time of a clone is the time of its largest part.
        with ThreadPoolExecutor(max_workers=max(1, len(databases)), thread_name_prefix="doppel-db") as pool:
            backups = {c["path"]: pool.submit(kind_of(c).capture, c, source_root, target_root, exclude)
                       for c in databases}
            for component in copy_roots(components):
                sizes[component["path"]] = kind_of(component).capture(component, source_root, target_root, exclude)
            sizes.update({path: job.result() for path, job in backups.items()})
        return tuple(ComponentSnapshot(kind=c["kind"], name=c["name"], location=str(final_root / c["path"]),
                                       size=sizes[c["path"]] if c["path"] in sizes else kind_of(c).size(c, target_root))
                     for c in components)

    def snapshot_status(self, snapshot_id: str) -> Snapshot:
        final = self._snapshot_dir(snapshot_id)
        found = self._read_snapshot(final, final.with_name(final.name + PARTIAL))
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
        if _interrupted(found.status, SNAPSHOT_IN_PROGRESS, SNAPSHOT_COMPLETE, partial):
            return replace(found, status=SNAPSHOT_FAILED,
                           status_reason="interrupted: the worker taking it stopped; snapshot again with the same "
                                         "key to start over")
        return found

    def delete_snapshot(self, snapshot_id: str, ignore_missing: bool = True) -> None:
        final = self._snapshot_dir(snapshot_id)
        partial = final.with_name(final.name + PARTIAL)
        with state.locked(self._lock_file):
            doomed = self._set_aside(final, partial)
        if not doomed and not ignore_missing:
            raise ResourceMissing(f"there is no snapshot {snapshot_id} to delete")
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)

    # --- stacks -----------------------------------------------------------------------

    def _env_dir(self, env: str) -> Path:
        if not env or "/" in env or env.startswith("."):
            raise DriverError(f"{env!r} is not an environment name", env=env, permanent=True)
        return self.state_dir / "envs" / env

    def _new_env_name(self, env: str) -> None:
        """An env may not take a production's name: backups and DNS would not know which is meant."""
        self._env_dir(env)
        if env in self.productions:
            raise DriverError(f"{env} is the name of a production; give the environment another name (e.g. "
                              f"{env}-copy)", env=env, permanent=True)

    def create_stack(self, env: str, snapshot: Snapshot, parameters: dict, key: str) -> Stack:
        """Build `env` from `snapshot`: its files, its databases, its DNS record. Once per key."""
        self._new_env_name(env)
        spec = self._production(snapshot.production, env)
        final = self._env_dir(env)
        partial = final.with_name(final.name + PARTIAL)
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
        return self._run(lambda: self._build(pending, spec, snapshot_dir, take_over, parameters, partial, final,
                                             cancel), owner, pending)

    def _build(self, pending: Stack, spec: Mapping, snapshot_dir: Path, take_over: bool, parameters: Mapping,
               partial: Path, final: Path, cancel: threading.Event) -> Stack:
        """Fill `partial` from the snapshot, register the DNS record, then rename it into place."""
        production = pending.tags[TAG_PRODUCTION]
        taken = False
        try:
            def exclude(_relative: str) -> bool:
                if cancel.is_set():
                    raise BuildCancelled()
                return False

            if take_over:
                taken = self._take_snapshot_copy(snapshot_dir, partial, pending.env, cancel)
            else:
                copy_tree(snapshot_dir / "root", partial / "root", exclude=exclude)
            outputs = self._outputs(pending.env, spec, final / "root")
            done = replace(pending, status=CREATE_COMPLETE, outputs=outputs)
            self._write_stack(partial, done, production, parameters)
            with state.locked(self._lock_file):
                self._check_still_ours(partial, cancel)
                self._put_dns(DnsRecord(name=outputs["dns_name"], type="A",
                                        value=str(parameters.get("address", "127.0.0.1")),
                                        ttl=int(parameters.get("dns_ttl", 60))), done.tags)
                (partial / "owner.json").unlink()
                os.rename(partial, final)
            return done
        except BuildCancelled:
            raise DriverError(f"environment {pending.env} was deleted while it was being built", env=pending.env)
        except Exception as exc:
            if taken:
                self._give_snapshot_copy_back(snapshot_dir, partial)
            reason = f"building env {pending.env} from snapshot {pending.tags[TAG_SNAPSHOT]} failed: {_describe(exc)}"
            failed = replace(pending, status=CREATE_FAILED, status_reason=reason)
            self._record_failure(partial, lambda: self._write_stack(partial, failed, production, parameters))
            raise DriverError(f"{reason}; create_stack with the same key rebuilds it, delete_stack removes it",
                              env=pending.env) from exc

    def _take_snapshot_copy(self, snapshot_dir: Path, partial: Path, env: str, cancel: threading.Event) -> bool:
        """Move the snapshot's copy into the env being built (one rename), noting it in the snapshot."""
        with state.locked(self._lock_file):
            self._check_still_ours(partial, cancel)
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
            outputs.update(kind_of(component).outputs(component, env_root))
        return outputs

    def _write_stack(self, folder: Path, stack: Stack, production: str, parameters: Mapping) -> None:
        state.write_json(folder / "stack.json", {"stack": stack.to_dict(), "production": production,
                                                 "parameters": dict(parameters)})

    def stack_status(self, env: str) -> Stack | None:
        final = self._env_dir(env)
        return self._read_stack(final, final.with_name(final.name + PARTIAL))

    def _read_stack(self, final: Path, partial: Path) -> Stack | None:
        data = state.read_json(final / "stack.json")
        if data:
            return Stack.from_dict(data["stack"])
        data = state.read_json(partial / "stack.json")
        if not data:
            return None
        found = Stack.from_dict(data["stack"])
        if _interrupted(found.status, CREATE_IN_PROGRESS, CREATE_COMPLETE, partial):
            return replace(found, status=CREATE_FAILED,
                           status_reason="interrupted: the worker building it stopped; create_stack with the same "
                                         "key rebuilds it, delete_stack removes it")
        return found

    def delete_stack(self, env: str, ignore_missing: bool = True) -> None:
        """Remove the environment's directory (whole or half-made) and its DNS records.

        The snapshot it was built from is a separate resource (delete_snapshot, or
        find_tagged on the env and delete_resource).
        """
        final = self._env_dir(env)
        partial = final.with_name(final.name + PARTIAL)
        with state.locked(self._lock_file):
            doomed = self._set_aside(final, partial)
            records = self._drop_dns({TAG_ENV: env})
        if not doomed and not records and not ignore_missing:
            raise ResourceMissing(f"there is no environment {env} to delete", env=env)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)

    # --- configure --------------------------------------------------------------------

    def configure(self, env: str, stack: Stack, policy: Mapping | None, secrets: Mapping[str, str]) -> dict:
        """Make the copy an environment of its own (see clouds.local.configure); returns its endpoints.

        `stack` says which build the caller means: if the env was rebuilt by another
        request since, nothing is done. One configure runs at a time per env.
        """
        current = configurable_stack(env, stack, self.stack_status(env))
        production = current.tags[TAG_PRODUCTION]
        spec = self._production(production, env)
        env_dir = self._env_dir(env)
        with state.locked(env_dir / ".configure.lock"):
            return apply_clone_policy(
                env=env, production=production, spec=spec, policy=policy, secrets=dict(secrets or {}),
                outputs=dict(current.outputs), env_root=env_dir / "root", marker=env_dir / "configure.json",
                salt=lambda: self._salt(env_dir))

    def _salt(self, env_dir: Path) -> bytes:
        """The env's anonymisation salt: random, made once, kept beside (never inside) the env's files."""
        path = env_dir / "anonymise.salt"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(_secrets.token_bytes(32))
        return path.read_bytes()

    # --- tags -------------------------------------------------------------------------

    def find_tagged(self, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        """Snapshots, stacks (whole, half-made or failed) and DNS records whose tags match."""
        found = []
        for folder, kind in (("snapshots", SNAPSHOT_KIND), ("envs", STACK_KIND)):
            for entry in sorted((self.state_dir / folder).iterdir()):
                if not entry.is_dir() or entry.name.startswith("."):
                    continue
                tags = state.read_json(entry / "tags.json") or {}
                if tags and tags_match(tags, tag_filter):
                    name = entry.name.removesuffix(PARTIAL)
                    if kind == STACK_KIND:
                        record = state.read_json(entry / "stack.json") or {}
                        found.append(TaggedResource(kind, record.get("stack", {}).get("id", name), name, tags))
                    else:
                        found.append(TaggedResource(kind, name, name, tags))
        for name, record in sorted(self._dns_records().items()):
            if tags_match(record.get("tags", {}), tag_filter) and record.get("tags"):
                found.append(TaggedResource(DNS_KIND, name, name, dict(record["tags"])))
        return _unique(found)

    def delete_resource(self, resource: TaggedResource, ignore_missing: bool = True) -> None:
        if resource.kind == STACK_KIND:
            self.delete_stack(resource.name, ignore_missing=ignore_missing)
        elif resource.kind == SNAPSHOT_KIND:
            self.delete_snapshot(resource.id, ignore_missing=ignore_missing)
        elif resource.kind == DNS_KIND:
            with state.locked(self._lock_file):
                removed = self._drop_dns(None, name=resource.name)
            if not removed and not ignore_missing:
                raise ResourceMissing(f"there is no DNS record {resource.name} to delete")
        else:
            raise DriverError(f"the local driver makes no {resource.kind!r} resources, so it cannot delete "
                              f"{resource.name}", permanent=True)

    # --- DNS --------------------------------------------------------------------------

    def _dns_records(self) -> dict:
        return (state.read_json(self.state_dir / "dns.json") or {}).get("records", {})

    def _put_dns(self, record: DnsRecord, tags: Mapping | None) -> DnsRecord | None:
        """Write one record (caller holds the lock); returns the one it replaced."""
        records = self._dns_records()
        name = _dns_name(record.name)
        previous = records.get(name)
        kept_tags = dict(tags) if tags is not None else (previous or {}).get("tags", {})
        records[name] = {**DnsRecord(name, record.type, record.value, record.ttl).to_dict(), "tags": kept_tags}
        state.write_json(self.state_dir / "dns.json", {"records": records})
        return DnsRecord.from_dict(previous) if previous else None

    def _drop_dns(self, tag_filter: Mapping | None, name: str | None = None) -> list[str]:
        """Delete records by tags or by name (caller holds the lock); returns the names deleted."""
        records = self._dns_records()
        doomed = [n for n, r in records.items()
                  if (name is not None and n == _dns_name(name)) or
                  (tag_filter is not None and r.get("tags") and tags_match(r["tags"], tag_filter))]
        if doomed:
            for doomed_name in doomed:
                del records[doomed_name]
            state.write_json(self.state_dir / "dns.json", {"records": records})
        return doomed

    def switch_dns(self, record: DnsRecord) -> DnsRecord | None:
        with state.locked(self._lock_file):
            return self._put_dns(record, None)

    def get_dns(self, name: str) -> DnsRecord | None:
        record = self._dns_records().get(_dns_name(name))
        return DnsRecord.from_dict(record) if record else None

    # --- object store, backups, restores ----------------------------------------------

    def object_store(self):
        """The default store for backups: a directory in the state directory."""
        if self._store is None:
            from clouds.stores.local import LocalStore  # written alongside; imported when first needed
            self._store = LocalStore(self.state_dir / "objects")
        return self._store

    def backup_source(self, env_or_production: str) -> BackupSource:
        """Production's directory, or an environment's, with its databases to back up online."""
        if env_or_production in self.productions:
            spec = self._production(env_or_production)
            root = self._production_root(env_or_production, spec, None)
        else:
            stack = self.stack_status(env_or_production)
            if stack is None or stack.status != CREATE_COMPLETE:
                raise ResourceMissing(f"{env_or_production!r} is neither a production nor a complete environment; "
                                      "nothing to back up", env=env_or_production)
            production = stack.tags.get(TAG_PRODUCTION)
            if not production:
                raise DriverError(f"env {env_or_production} was made as a bare restore target, so its databases are "
                                  "unknown; make it with restore_target(env, production=...)", env=env_or_production,
                                  permanent=True)
            spec = self._production(production, env_or_production)
            root = self._env_dir(env_or_production) / "root"
        databases = tuple(c["path"] for c in spec["components"] if kind_of(c).holds_data)
        exclude = tuple(path + suffix for path in databases for suffix in SIDE_SUFFIXES)
        exclude += tuple(f"{c['path']}/{pattern}" for c in spec["components"] for pattern in c.get("exclude", ()))
        return BackupSource(root=root, databases=databases, exclude=exclude)

    def restore_target(self, env: str, production: str | None = None) -> Path:
        """The root directory of `env`; made (as a complete, tagged stack) when the env does not exist."""
        final = self._env_dir(env)
        with state.locked(self._lock_file):
            if not (final / "stack.json").exists():
                tags = {TAG_ENV: env, **({TAG_PRODUCTION: production} if production else {})}
                outputs = self._outputs(env, self._production(production, env), final / "root") if production \
                    else {"env": env, "root": str(final / "root")}
                stack = Stack(id=resource_name("stack", env, f"restore:{env}"), name=env, env=env,
                              status=CREATE_COMPLETE, status_reason="made as a restore target", outputs=outputs,
                              tags=tags)
                (final / "root").mkdir(parents=True, exist_ok=True)
                state.write_json(final / "tags.json", tags)
                self._write_stack(final, stack, production or "", {})
        return final / "root"

    # --- shared steps -------------------------------------------------------------------

    def _run(self, build: Callable[[], Any], owner: dict, pending: Any) -> Any:
        """Run a build now and return what it made, or start it on a thread and return `pending`."""
        def body():
            try:
                return build()
            finally:
                state.end_build(owner)

        if not self.background:
            return body()
        threading.Thread(target=_quietly(body), name="doppel-local-build", daemon=True).start()
        return pending

    def _check_still_ours(self, partial: Path, cancel: threading.Event) -> None:
        if cancel.is_set() or not (partial / "owner.json").exists():
            raise BuildCancelled()

    def _record_failure(self, partial: Path, write_record: Callable[[], None]) -> None:
        """Keep the failed attempt's record (for status and find_tagged), drop its data."""
        if not partial.is_dir():
            return  # deleted meanwhile: nothing to record
        shutil.rmtree(partial / "root", ignore_errors=True)
        try:
            write_record()
            (partial / "owner.json").unlink(missing_ok=True)
        except FileNotFoundError:
            pass  # deleted while we wrote

    def _set_aside(self, *folders: Path) -> list[Path]:
        """Rename folders out of sight at once (caller holds the lock); removing them can then take its time."""
        moved = []
        for folder in folders:
            if folder.exists():
                owner = state.read_json(folder / "owner.json")
                if owner:
                    state.cancel_build(owner)
                trash = folder.with_name(f".deleting-{folder.name}-{_secrets.token_hex(4)}")
                os.rename(folder, trash)
                moved.append(trash)
        return moved


def _interrupted(status: str, in_progress: str, complete: str, partial: Path) -> bool:
    """Whether a build recorded in `partial` stopped with its builder: one in progress, or one recorded complete
    whose builder died before renaming it into place (it still holds owner.json, removed just before the rename)."""
    owner = state.read_json(partial / "owner.json")
    return (status == in_progress or (status == complete and owner is not None)) and not state.builder_alive(owner)


def _dns_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def _unique(resources: list[TaggedResource]) -> list[TaggedResource]:
    seen, result = set(), []
    for resource in resources:
        if (resource.kind, resource.id) not in seen:
            seen.add((resource.kind, resource.id))
            result.append(resource)
    return result


def _quietly(body: Callable[[], Any]) -> Callable[[], None]:
    """A thread target that keeps a failed background build's error in its status, not on stderr."""
    def run():
        try:
            body()
        except Exception:
            pass
    return run
