"""The `CloudDriver` for productions on OpenStack: Nova images, Cinder snapshots, Heat stacks, Swift.

A production is an existing Heat stack (or named servers and volumes). What Doppel
makes for an environment, and the names and tags it finds them by, are listed in
clouds.openstack.resources. The verbs live beside this module by what they make:
snapshots.py (images and volume snapshots), stacks.py (Heat stacks), bundle.py
(configure: the config bundle in Swift and the credentials update), backups.py
(backup_source: the stack's description as files), databases.py (each env's own
database: production's dump restored and anonymised, dropped with the env), dns.py
(switch_dns and get_dns: records in Designate), logs.py (collect_logs: the servers'
consoles), file_trees.py (trees on servers, with rsync over SSH, host keys pinned), dr.py and dr_home.py (a DR
target in another region or cloud: images and backups copied there, the DR stack, the failback);
sdk.py holds the calls into openstacksdk and what its errors mean.

Nothing blocks for long: snapshot and create_stack return IN_PROGRESS, and
`snapshot_status` / `stack_status` say when OpenStack is done (the `poll`
function, ticked by the scheduler or by `doppel listen openstack`). Only
configure waits, for the in-place stack update that hands the environment its
fresh credentials (seconds).

openstacksdk objects never leave this package: everything returned is one of
`core.cloud`'s dataclasses.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clouds.openstack import sdk
from clouds.openstack.backups import BackupVerbs
from clouds.openstack.bundle import BundleVerbs
from clouds.openstack.databases import DatabaseVerbs
from clouds.openstack.dns import DnsVerbs
from clouds.openstack.dr import DrVerbs
from clouds.openstack.dr_home import DrHomeVerbs
from clouds.openstack.file_trees import FileTreeVerbs
from clouds.openstack.logs import LogVerbs
from clouds.openstack.resources import CONTAINER, IMAGE, SNAPSHOT, STACK, VOLUME_SNAPSHOT
from clouds.openstack.snapshots import SnapshotVerbs
from clouds.openstack.stacks import StackVerbs
from core.cloud import TAG_ENV, TAG_SNAPSHOT, DriverError, TaggedResource
from schemas.production import ProductionConfigError, load_productions


class OpenStackDriver(SnapshotVerbs, StackVerbs, BundleVerbs, BackupVerbs, DatabaseVerbs, DnsVerbs, LogVerbs,
                      FileTreeVerbs, DrVerbs, DrHomeVerbs):
    """Doppel's verbs on OpenStack, for the productions whose `driver` is openstack."""

    name = "openstack"

    def __init__(self, productions: Mapping, *, connect=None, state_dir: Path | None = None):
        try:
            loaded = load_productions(productions)
        except ProductionConfigError as exc:
            raise DriverError(f"the productions section of the config is wrong: {exc}", permanent=True) from None
        self.productions = {name: spec for name, spec in loaded.items() if spec["driver"] == "openstack"}
        self._connect = connect or sdk.connect
        self._connections: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self.state_dir = Path(state_dir) if state_dir is not None else None  # what backup_source writes

    # --- connections and productions ------------------------------------------------------

    def _spec(self, production: str, env: str | None = None) -> dict:
        spec = self.productions.get(production)
        if spec is None:
            known = ", ".join(sorted(self.productions)) or "none"
            raise DriverError(f"there is no openstack production named {production!r} in doppel.yaml (openstack "
                              f"productions: {known})", env=env, permanent=True)
        return spec

    def _conn(self, spec: Mapping):
        """One openstacksdk connection per (cloud, region), made on first use."""
        where = (spec["cloud"], spec.get("region"))
        with self._lock:
            if where not in self._connections:
                self._connections[where] = self._connect(*where)
            return self._connections[where]

    def _all_conns(self) -> list:
        seen, conns = set(), []
        for spec in self.productions.values():
            where = (spec["cloud"], spec.get("region"))
            if where not in seen:
                seen.add(where)
                conns.append(self._conn(spec))
        return conns

    def _production_parts(self, conn, production: str, spec: Mapping, env: str) -> tuple[list, list]:
        """Production's servers and volumes as (name, id) pairs, from its Heat stack or by name."""
        if spec.get("stack"):
            found = sdk.call(env, f"find production {production}'s stack {spec['stack']}",
                             lambda: conn.orchestration.find_stack(spec["stack"], ignore_missing=True))
            if found is None:
                raise DriverError(f"production {production}'s Heat stack {spec['stack']!r} does not exist; fix "
                                  f"productions.{production}.stack in doppel.yaml", env=env, permanent=True)
            resources = sdk.call(env, f"list the resources of stack {spec['stack']}",
                                 lambda: list(conn.orchestration.resources(found)))
            servers = sorted((r.name, r.physical_resource_id) for r in resources
                             if r.resource_type == "OS::Nova::Server" and r.physical_resource_id)
            volumes = sorted((r.name, r.physical_resource_id) for r in resources
                             if r.resource_type == "OS::Cinder::Volume" and r.physical_resource_id)
            return servers, volumes
        servers = [(n, self._find_id(env, production, "server", n, conn.compute.find_server)) for n in spec["servers"]]
        volumes = [(n, self._find_id(env, production, "volume", n, conn.block_storage.find_volume))
                   for n in spec["volumes"]]
        return servers, volumes

    def _find_id(self, env: str, production: str, kind: str, name: str, find) -> str:
        found = sdk.call(env, f"find {kind} {name}", lambda: find(name, ignore_missing=True))
        if found is None:
            raise DriverError(f"production {production}'s {kind} {name!r} does not exist; fix "
                              f"productions.{production}.{kind}s in doppel.yaml", env=env, permanent=True)
        return found.id

    # --- tags -------------------------------------------------------------------------------------

    def find_tagged(self, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        """Doppel snapshots (their images and volume snapshots), stacks and bundle containers whose tags match."""
        found: list[TaggedResource] = []
        for conn in self._all_conns():
            groups: dict[str, list] = {}
            for image in self._images(conn, tag_filter):
                groups.setdefault(image.properties.get(TAG_SNAPSHOT) or f"image:{image.id}", []).append(
                    (IMAGE, image.id, image.name, sdk.doppel_tags(image.properties)))
            for snap in self._volume_snapshots(conn, tag_filter):
                groups.setdefault(snap.metadata.get(TAG_SNAPSHOT) or f"volume_snapshot:{snap.id}", []).append(
                    (VOLUME_SNAPSHOT, snap.id, snap.name, sdk.doppel_tags(snap.metadata)))
            for group, parts in sorted(groups.items()):
                if len(parts) == 1 and group.startswith((IMAGE + ":", VOLUME_SNAPSHOT + ":")):
                    found.append(TaggedResource(*parts[0]))
                else:
                    names = ", ".join(f"{kind} {name}" for kind, _, name, _ in parts)
                    found.append(TaggedResource(SNAPSHOT, group, f"{group} ({names})", parts[0][3]))
            found += self._stacks(conn, tag_filter)
            found += self._containers(conn, tag_filter)
        return found

    def delete_resource(self, resource: TaggedResource, ignore_missing: bool = True) -> None:
        """Delete one resource found by find_tagged."""
        if resource.kind == SNAPSHOT:
            return self.delete_snapshot(resource.id, ignore_missing=ignore_missing)
        if resource.kind == STACK:
            env = resource.tags.get(TAG_ENV) or resource.name.removeprefix("doppel-")
            return self.delete_stack(env, ignore_missing=ignore_missing)
        for conn in self._all_conns():
            if resource.kind == IMAGE:
                conn.image.delete_image(resource.id, ignore_missing=True)
            elif resource.kind == VOLUME_SNAPSHOT:
                conn.block_storage.delete_snapshot(resource.id, ignore_missing=True)
            elif resource.kind == CONTAINER:
                self._delete_container(conn, resource.id)
            else:
                raise DriverError(f"the openstack driver makes no {resource.kind!r} resources, so it cannot delete "
                                  f"{resource.name}", permanent=True)

    # --- the rest of the interface ------------------------------------------------------------

    def object_store(self):
        """Swift through Keystone, in the first openstack production's cloud: container doppel-backups."""
        from clouds.stores.swift import SwiftStore
        spec = next(iter(self.productions.values()), None)
        if spec is None:
            raise DriverError("no production uses the openstack driver, so it has no object store", permanent=True)
        return SwiftStore("doppel-backups", cloud=spec["cloud"], region_name=spec.get("region"))

    def restore_target(self, env: str, production: str | None = None, key: str | None = None):
        of = f" of production {production}" if production else ""
        raise DriverError(f"restores into OpenStack environments (env {env}{of}) are not supported by the openstack "
                          "driver yet: a backup of an OpenStack environment holds its stack's description, which "
                          "`doppel backup verify` checks and docs/openstack.md rebuilds by hand; until the issue "
                          "\"OpenStack end to end\" builds them, failover, drills and restores need a local "
                          "production", env=env, permanent=True)

    def database_targets(self, env: str, production: str) -> dict[str, dict]:
        return {}  # restores into OpenStack environments are not built yet (restore_target says so)

    def production_root(self, production: str):
        raise DriverError(f"failback into OpenStack production {production} is not supported by the openstack "
                          "driver yet; restore it by hand (docs/restore-by-hand.md) and switch DNS back",
                          permanent=True)

    def restore_in_place(self, env_or_production: str, restore, *, keep_old: bool = False, label: str):
        raise DriverError(f"restores in place on OpenStack ({env_or_production}) are not supported by the openstack "
                          "driver yet; the issue \"OpenStack end to end\" builds them", env=env_or_production,
                          permanent=True)
