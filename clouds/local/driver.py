"""The embedded cloud: productions are directories on this machine, and so are their doubles.

State directory layout (everything Doppel makes lives here, never in production):

    snapshots/<id>/            snapshot.json, tags.json, root/ (the captured components)
    envs/<env>/                stack.json, tags.json, configure.json, root/ (the environment)
    <either>.partial/          a build under way (owner.json names its builder) or failed
    dns.json                   the DNS records (clouds.local.dns)
    objects/                   the default object store (backups)
    .lock                      held while a decision reads-then-writes

The verbs live beside this module by what they make: snapshots.py (snapshots),
stacks.py (environments, and a snapshot's copy taken over by its env), builds.py
(running a build now or on a thread, and what a cancelled or failed one leaves),
dns.py (the records file), restores.py (a restored tree swapped in); configure.py
makes a copy an environment of its own.
"""
from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from clouds.local import builds, logs, state
from clouds.local.components import kind_of
from clouds.local.configure import apply_clone_policy
from clouds.local.dns import DNS_KIND, LocalDnsProvider
from clouds.local.restores import replace_tree, restore_home
from clouds.local.snapshots import SnapshotVerbs
from clouds.local.sqlite import SIDE_SUFFIXES
from clouds.local.stacks import StackVerbs
from core.cloud import (
    CREATE_COMPLETE,
    TAG_ENV,
    TAG_KEY,
    TAG_PRODUCTION,
    BackupSource,
    CollectedLogs,
    DnsRecord,
    DriverError,
    ResourceMissing,
    Stack,
    TaggedResource,
    configurable_stack,
    resource_name,
    tags_match,
)
from schemas.production import ProductionConfigError, load_productions

STACK_KIND, SNAPSHOT_KIND = "stack", "snapshot"


class LocalDriver(SnapshotVerbs, StackVerbs):
    """The `CloudDriver` for productions that are directories on this host."""

    name = "local"

    def __init__(self, state_dir: Path, productions: Mapping, *, background: bool = False,
                 keep_snapshots: bool = False):
        try:
            self.productions = load_productions(productions)
        except ProductionConfigError as exc:
            raise DriverError(f"the productions section of the config is wrong: {exc}", permanent=True) from None
        self.state_dir = Path(state_dir).resolve()
        for spec in self.productions.values():  # PostgreSQL instances of their own (clouds.local.pg_thin) live here
            for component in spec.get("components", ()):
                if component.get("data_directory"):
                    component.setdefault("instances_dir", str(self.state_dir / "instances"))
        self.background = background
        self.keep_snapshots = keep_snapshots
        for folder in ("snapshots", "envs"):
            (self.state_dir / folder).mkdir(parents=True, exist_ok=True)
        self._lock_file = self.state_dir / ".lock"
        self.dns = LocalDnsProvider(self.state_dir)  # its records file, written under the same lock
        self._store = None

    # --- productions and environment names -----------------------------------------

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
                kind = kind_of(component)
            except LookupError as exc:
                raise DriverError(f"production {name}: {exc}", env=env, permanent=True) from None
            if not kind.on_server and not (root / component["path"]).exists():
                raise DriverError(f"production {name}: component {index} ({component['kind']} "
                                  f"{component['path']}) is not in {root}; fix productions.{name}.components in "
                                  "doppel.yaml, or restore it", env=env, permanent=True)

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
                    name = entry.name.removesuffix(builds.PARTIAL)
                    if kind == STACK_KIND:
                        record = state.read_json(entry / "stack.json") or {}
                        found.append(TaggedResource(kind, record.get("stack", {}).get("id", name), name, tags))
                    else:
                        found.append(TaggedResource(kind, name, name, tags))
        found += self.dns.tagged(tag_filter)
        return _unique(found)

    def delete_resource(self, resource: TaggedResource, ignore_missing: bool = True) -> None:
        if resource.kind == STACK_KIND:
            self.delete_stack(resource.name, ignore_missing=ignore_missing)
        elif resource.kind == SNAPSHOT_KIND:
            self.delete_snapshot(resource.id, ignore_missing=ignore_missing)
        elif resource.kind == DNS_KIND:
            with state.locked(self._lock_file):
                removed = self.dns.drop(None, name=resource.name)
            if not removed and not ignore_missing:
                raise ResourceMissing(f"there is no DNS record {resource.name} to delete")
        else:
            raise DriverError(f"the local driver makes no {resource.kind!r} resources, so it cannot delete "
                              f"{resource.name}", permanent=True)

    # --- DNS --------------------------------------------------------------------------

    def switch_dns(self, record: DnsRecord) -> DnsRecord | None:
        with state.locked(self._lock_file):
            return self.dns.put(record, None)

    def get_dns(self, name: str) -> DnsRecord | None:
        return self.dns.record(name)

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
        files = [c for c in spec["components"] if not kind_of(c).on_server]
        databases = tuple(c["path"] for c in files if kind_of(c).holds_data)
        exclude = tuple(path + suffix for path in databases for suffix in SIDE_SUFFIXES)
        exclude += tuple(f"{c['path']}/{pattern}" for c in files for pattern in c.get("exclude", ()))
        servers = tuple(kind_of(c).source(c) if env_or_production in self.productions
                        else kind_of(c).target(c, env_or_production)
                        for c in spec["components"] if kind_of(c).on_server)
        return BackupSource(root=root, databases=databases, exclude=exclude, servers=servers)

    def collect_logs(self, env: str, into: Path) -> CollectedLogs:
        """The files the env's production names as logs (clouds.local.logs), copied into `into`."""
        stack = self.stack_status(env)
        production = stack.tags.get(TAG_PRODUCTION) if stack is not None else None
        if not production or production not in self.productions:
            return CollectedLogs(warnings=(f"env {env} has no stack of a known production: no logs to collect",)
                                 if stack is None else ())
        return logs.collect(self._env_dir(env) / "root", self.productions[production].get("logs", []), into)

    def database_targets(self, env: str, production: str) -> dict[str, dict]:
        """Where each server database of `production` goes when a backup is restored for `env`."""
        spec = self._production(production, env)
        return {c["name"]: kind_of(c).target(c, env) for c in spec["components"] if kind_of(c).on_server}

    def restore_target(self, env: str, production: str | None = None, key: str | None = None) -> Path:
        """The root directory of `env`; made (as a complete, tagged stack) when the env does not exist."""
        final = self._env_dir(env)
        with state.locked(self._lock_file):
            if not (final / "stack.json").exists():
                tags = {TAG_ENV: env, **({TAG_PRODUCTION: production} if production else {}),
                        **({TAG_KEY: key} if key else {})}
                outputs = self._outputs(env, self._production(production, env), final / "root") if production \
                    else {"env": env, "root": str(final / "root")}
                stack = Stack(id=resource_name("stack", env, key or f"restore:{env}"), name=env, env=env,
                              status=CREATE_COMPLETE, status_reason="made as a restore target", outputs=outputs,
                              tags=tags)
                (final / "root").mkdir(parents=True, exist_ok=True)
                state.write_json(final / "tags.json", tags)
                self._write_stack(final, stack, production or "", {})
        return final / "root"

    def production_root(self, production: str) -> Path:
        """Production's directory, for a failback to restore into (it may be gone: production failed)."""
        return Path(self._production(production)["path"]).resolve()

    def restore_in_place(self, env_or_production: str, restore: Callable[[Path], object], *, keep_old: bool = False,
                         label: str) -> Path | None:
        """Production's directory, or an environment's root, replaced by what `restore(directory)` writes beside it
        (clouds.local.restores); with `keep_old`, where the replaced tree is kept."""
        if env_or_production in self.productions:
            root = self.production_root(env_or_production)
        else:
            env_dir = self._env_dir(env_or_production)
            if not (env_dir / "stack.json").exists():
                raise ResourceMissing(f"env {env_or_production} does not exist, so nothing can be restored in its "
                                      "place; make it first (restore_target)", env=env_or_production)
            root = env_dir / "root"
        return replace_tree(root, restore, keep_old=keep_old, label=label)

    def dr_restore_home(self, production: str, backup_id: str, restore: Callable[[Path, dict], object]
                        ) -> list[str]:
        """Failback: production's directory and server databases replaced by `restore(into, databases)` of the
        failback's backup, never half-written; where what they held before is kept."""
        spec = self._production(production)
        homes = {c["name"]: (kind_of(c).production_server(c), c["database"]) for c in spec["components"]
                 if kind_of(c).on_server}
        return restore_home(self.production_root(production), homes, production, backup_id, restore)


def _unique(resources: list[TaggedResource]) -> list[TaggedResource]:
    seen, result = set(), []
    for resource in resources:
        if (resource.kind, resource.id) not in seen:
            seen.add((resource.kind, resource.id))
            result.append(resource)
    return result
