"""An AWS DR target's data: the backup restored into the DR stack, probed, carried home, and the stack deleted.

    restore   dr_restore reads the backup from the DR bucket only, and loads its databases (the archive layout
              every backup has: clouds.backups) where the DR stack's outputs say, through the production's
              `databases:` entries, never into production's own database; a backup without databases restores
              nothing (its description files are what it holds).
    probe     dr_probe: the DR stack complete, each of its EC2 instances running, and each database's tables
              holding the backup's rows.
    delete    dr_delete drops the DR databases (never production's) and deletes the stack (CloudFormation
              deletes its instances).
    failback  dr_backup_source describes the DR stack (stack.json, outputs.json with secrets masked) and names
              its databases as the backup's servers; dr_restore_home puts that backup's databases beside
              production's own, checks them, and swaps them in, keeping production's aside: the same steps as
              the OpenStack target (clouds.openstack.dr_home), run here against production's stack outputs.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from clouds.aws import api
from clouds.backups.description import dr_stack_description, write_description
from clouds.backups.manifests import find_backup
from clouds.backups.restore import restore
from clouds.databases.copies import (  # databases: read as on every cloud
    backup_entry,
    drop_databases,
    locate,
    same_database,
)
from core.cloud import DELETE_IN_PROGRESS, BackupSource, DriverError, Stack

log = logging.getLogger(__name__)
FOLDER = "aws-dr"


class DrDataVerbs:
    """The restore, probe, delete and failback verbs of `AwsDriver` (core.cloud.DrTargetDriver), beside
    clouds.aws.dr's (`_dr_side`, `_dr_store`)."""

    def _dr_complete(self, production: str, target: Mapping) -> tuple[dict, object, str, Stack]:
        spec, dr, where = self._dr_side(production, target)
        stack = self._stack(dr, target["env"])
        if stack is None or not stack.complete:
            raise DriverError(f"the DR stack of {production} in {where} is "
                              f"{stack.status if stack else 'missing'}; nothing can be restored into it",
                              env=target["env"])
        return spec, dr, where, stack

    def _dr_targets(self, production: str, spec: Mapping, stack: Stack, env: str, manifest) -> dict:
        """Database name -> where it goes in the DR stack (never production's own database)."""
        dumped = {c.name: c for c in manifest.server_databases}
        targets = {}
        for database in spec["databases"]:
            server, name = locate(database, stack.outputs, env, production)
            theirs = dumped.get(database["name"])
            if theirs is not None and theirs.server:
                from clouds.databases.servers import Server
                if same_database((server, name), (Server.from_dict(theirs.server), theirs.database)):
                    raise DriverError(f"the DR stack's database {database['name']} would be production's own "
                                      f"({name} on {server.where}); fix the DR template's outputs", env=env,
                                      permanent=True)
            targets[database["name"]] = {"kind": database["kind"], "server": server.to_dict(), "database": name}
        return targets

    def dr_restore(self, production: str, target: Mapping, backup_id: str) -> list[str]:
        env = target["env"]
        store = self._dr_store(production, target)
        manifest = find_backup(store, backup_id, production)
        spec, _, _, stack = self._dr_complete(production, target)
        if not manifest.server_databases:
            return []  # a backup of the stack's description only: nothing to load into the DR stack
        from clouds.databases.servers import DatabaseError
        targets = self._dr_targets(production, spec, stack, env, manifest)
        scratch = self._sources_dir().parent / "dr-restores" / env
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            restore(store, manifest, scratch, databases=targets)
        except DatabaseError as exc:
            raise DriverError(f"cannot restore backup {backup_id} into the DR stack of {production}: {exc}",
                              env=env) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return sorted(targets)

    def dr_probe(self, production: str, target: Mapping, backup_id: str) -> list[str]:
        env = target["env"]
        manifest = find_backup(self._dr_store(production, target), backup_id, production)
        try:
            spec, dr, where, stack = self._dr_complete(production, target)
        except DriverError as exc:
            return [str(exc)]
        problems = self._dr_instances(dr, stack, env, where)
        if not manifest.server_databases:
            return problems
        from clouds.backups.server_restore import check
        from clouds.databases.servers import DatabaseError, Server
        targets = self._dr_targets(production, spec, stack, env, manifest)
        for component in manifest.server_databases:
            where_to = targets.get(component.name)
            if where_to is None:
                problems.append(f"database {component.name} has no place in the DR stack")
                continue
            try:
                problems += check(manifest, component, Server.from_dict(where_to["server"]), where_to["database"])
            except DatabaseError as exc:
                problems.append(f"database {component.name}: {exc}")
        return problems

    def _dr_instances(self, dr, stack: Stack, env: str, where: str) -> list[str]:
        """What is wrong with the DR stack's EC2 instances: each must be running."""
        resources = api.call(env, f"list the resources of the DR stack {stack.name}", lambda: dr.cloudformation
                             .describe_stack_resources(StackName=stack.id)["StackResources"])
        ids = {r["PhysicalResourceId"]: r["LogicalResourceId"] for r in resources
               if r["ResourceType"] == "AWS::EC2::Instance" and r.get("PhysicalResourceId")}
        if not ids:
            return []
        found = api.call(env, f"read the DR stack {stack.name}'s instances", lambda: [
            i for r in dr.ec2.describe_instances(InstanceIds=sorted(ids))["Reservations"] for i in r["Instances"]])
        states = {i["InstanceId"]: i["State"]["Name"] for i in found}
        return [f"instance {name} ({instance}) of the DR stack in {where} is {states.get(instance, 'missing')}"
                for instance, name in sorted(ids.items()) if states.get(instance) != "running"]

    def dr_delete(self, production: str, target: Mapping) -> bool:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        stack = self._stack(dr, env)
        if stack is None:
            return False
        drop_databases(spec["databases"], env=env, production=production, outputs=stack.outputs,
                       production_outputs=lambda: self._production_outputs(production, spec),
                       keep_when_unreadable=True)
        if stack.status != DELETE_IN_PROGRESS:
            log.info("DR of %s: deleting stack %s in %s", production, stack.name, where)
            api.call(env, f"delete the DR stack {stack.name}",
                     lambda: dr.cloudformation.delete_stack(StackName=stack.id or stack.name))
        return True

    # --- failback -------------------------------------------------------------------------

    def dr_backup_source(self, production: str, target: Mapping) -> BackupSource:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        stack = self._stack(dr, env)
        description = dr_stack_description(production, env, stack, where)
        servers = tuple(backup_entry(database, stack.outputs, env, production) for database in spec["databases"])
        return BackupSource(root=write_description(self._sources_dir(), env, FOLDER, description), servers=servers)

    def dr_restore_home(self, production: str, backup_id: str, restore: Callable[[Path, dict], object]
                        ) -> list[str]:
        spec = self._spec(production)
        if spec.get("databases"):
            return _Home(self).dr_restore_home(production, backup_id, restore)
        scratch = self._sources_dir().parent / "failback" / production
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            restore(scratch, {})  # the backup read whole (sha256 checked); it holds nothing to swap in
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return []


def _Home(driver):
    """The OpenStack target's failback steps (restore beside, check, swap) over this driver's production."""
    from clouds.openstack.dr_home import DrHomeVerbs

    class Home(DrHomeVerbs):
        _spec = staticmethod(driver._spec)
        _sources_dir = staticmethod(driver._sources_dir)

        def _conn(self, spec):
            return spec

        def _production_outputs(self, spec, production, _spec, _env):
            return driver._production_outputs(production, spec)

        def restore_file_trees(self, *args, **kwargs) -> list[str]:
            return []  # AWS productions have no file trees

    return Home()
