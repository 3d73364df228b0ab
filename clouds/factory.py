"""The cloud driver a Doppel process uses: each production's own (`driver:` in doppel.yaml).

With only local productions this is the `LocalDriver` itself. When some production
runs on OpenStack or AWS, `ProductionDriver` sends each verb to the driver of the production
it concerns: by the production named (snapshot), the snapshot's production
(create_stack), the stack's tags (configure), the resource's tags (delete_resource);
look-ups by env or id ask each driver in turn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from core.cloud import TAG_PRODUCTION, DnsRecord, ResourceMissing, Snapshot, Stack, TaggedResource


def make_driver(config) -> object:
    """The driver for this configuration: local alone, or one that dispatches per production."""
    from clouds.local import LocalDriver
    productions = config["productions"]
    local = LocalDriver(Path(config.state_dir) / "local", productions)
    used = {e.get("driver") for e in productions.values() if isinstance(e, Mapping)}
    others: dict[str, object] = {}
    if "openstack" in used:
        from clouds.openstack import OpenStackDriver
        others["openstack"] = OpenStackDriver(productions, state_dir=Path(config.state_dir) / "openstack")
    if "aws" in used:
        from clouds.aws import AwsDriver
        others["aws"] = AwsDriver(productions, state_dir=Path(config.state_dir) / "aws")
    if not others:
        return local
    return ProductionDriver(local, others, {name: entry.get("driver", "local") for name, entry in productions.items()})


class ProductionDriver:
    """A `CloudDriver` that hands each call to the driver of the production it is about."""

    name = "production"

    def __init__(self, local, others: Mapping[str, object], driver_of: Mapping[str, str]):
        self.local = local
        self.drivers = {"local": local, **others}
        self.driver_of = dict(driver_of)

    def _for(self, production: str | None):
        return self.drivers.get(self.driver_of.get(production or "", "local"), self.local)

    def _each(self):
        return list(self.drivers.values())

    def snapshot(self, production: str, env: str, key: str, restore=None) -> Snapshot:
        if restore is None:
            return self._for(production).snapshot(production, env, key)
        return self._for(production).snapshot(production, env, key, restore=restore)

    def snapshot_status(self, snapshot_id: str) -> Snapshot:
        for driver in self._each():
            try:
                return driver.snapshot_status(snapshot_id)
            except ResourceMissing:
                continue
        raise ResourceMissing(f"there is no snapshot {snapshot_id} in any cloud; take a new one")

    def delete_snapshot(self, snapshot_id: str, ignore_missing: bool = True) -> None:
        for driver in self._each():
            driver.delete_snapshot(snapshot_id, ignore_missing=True)

    def create_stack(self, env: str, snapshot: Snapshot, parameters: dict, key: str) -> Stack:
        return self._for(snapshot.production).create_stack(env, snapshot, parameters, key)

    def stack_status(self, env: str) -> Stack | None:
        for driver in self._each():
            found = driver.stack_status(env)
            if found is not None:
                return found
        return None

    def delete_stack(self, env: str, ignore_missing: bool = True) -> None:
        for driver in self._each():
            driver.delete_stack(env, ignore_missing=True)

    def configure(self, env: str, stack: Stack, policy, secrets) -> dict:
        production = stack.tags.get(TAG_PRODUCTION) if stack is not None else None
        return self._for(production).configure(env, stack, policy, secrets)

    def find_tagged(self, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        return [resource for driver in self._each() for resource in driver.find_tagged(tag_filter)]

    def delete_resource(self, resource: TaggedResource, ignore_missing: bool = True) -> None:
        production = resource.tags.get(TAG_PRODUCTION)
        if production in self.driver_of:
            return self._for(production).delete_resource(resource, ignore_missing=ignore_missing)
        kinds_local = ("stack", "snapshot", "dns_record")
        driver = self.local if resource.kind in kinds_local and not resource.name.startswith("doppel-") \
            else self.drivers.get("openstack", self.local)
        return driver.delete_resource(resource, ignore_missing=ignore_missing)

    # The default store and DNS stay with the local driver for now; backups and restores go to the production's.
    def object_store(self):
        return self.local.object_store()

    def switch_dns(self, record: DnsRecord) -> DnsRecord | None:
        return self.local.switch_dns(record)

    def get_dns(self, name: str) -> DnsRecord | None:
        return self.local.get_dns(name)

    def backup_source(self, env_or_production: str):
        return self._owner(env_or_production).backup_source(env_or_production)

    def collect_logs(self, env: str, into: Path):
        return self._owner(env).collect_logs(env, into)

    def _owner(self, env_or_production: str):
        """The driver of a production, or of the production an environment's stack was made from."""
        if env_or_production in self.driver_of:
            return self._for(env_or_production)
        stack = self.stack_status(env_or_production)
        return self._for(stack.tags.get(TAG_PRODUCTION) if stack is not None else None)

    def restore_target(self, env: str, production: str | None = None, key: str | None = None):
        return self._for(production).restore_target(env, production=production, key=key)

    def database_targets(self, env: str, production: str) -> dict[str, dict]:
        return self._for(production).database_targets(env, production)

    def production_root(self, production: str) -> Path:
        return self._for(production).production_root(production)

    def restore_in_place(self, env_or_production: str, restore, *, keep_old: bool = False, label: str):
        return self._for(env_or_production if env_or_production in self.driver_of else None) \
            .restore_in_place(env_or_production, restore, keep_old=keep_old, label=label)

    def restore_file_trees(self, env: str, restored: Path, *, production: str) -> list[str]:
        """Copy a restored backup's file trees onto the servers of `env`'s stack (clouds.openstack.file_trees);
        a local production's files come back with its directory, so there is nothing more to copy."""
        driver = self._for(production)
        if not hasattr(driver, "restore_file_trees"):
            return []
        return driver.restore_file_trees(env, restored, production=production)

    # A DR target's verbs (core.cloud.DrTargetDriver) go to the production's driver.
    def dr_copy_images(self, production: str, target):
        return self._for(production).dr_copy_images(production, target)

    def dr_copy_backup(self, production: str, target, backup_id: str, source):
        return self._for(production).dr_copy_backup(production, target, backup_id, source)

    def dr_stack(self, production: str, target, key: str | None):
        return self._for(production).dr_stack(production, target, key)

    def dr_restore(self, production: str, target, backup_id: str):
        return self._for(production).dr_restore(production, target, backup_id)

    def dr_probe(self, production: str, target, backup_id: str):
        return self._for(production).dr_probe(production, target, backup_id)

    def dr_delete(self, production: str, target):
        return self._for(production).dr_delete(production, target)

    def dr_describe(self, production: str, target):
        return self._for(production).dr_describe(production, target)

    def dr_backup_source(self, production: str, target):
        return self._for(production).dr_backup_source(production, target)

    def dr_restore_home(self, production: str, backup_id: str, restore):
        return self._for(production).dr_restore_home(production, backup_id, restore)

    def __getattr__(self, name):
        # Extra verbs of the local driver (background, state_dir ...) stay reachable.
        return getattr(self.local, name)
