"""An OpenStack DR target's failback: what the DR stack holds, backed up and put back into production's components.

    dr_backup_source  the DR stack's description and its databases (where its outputs say), as a backup
                      source, with the file trees of its servers (rsync, host keys pinned): the failback backs it
                      up as a backup of the production (production's data now).
    dr_restore_home   each database of that backup restored into a side database beside production's own
                      (`<name>_fb<digest>`), its tables' rows checked against the backup's manifest, and only
                      then swapped in: production's database is renamed `<name>_pre_fb<digest>` (kept, as the
                      local driver keeps production's tree: it may hold writes made between the last backup and
                      the failure) and the side one takes its name. A restore that fails leaves production's
                      databases as they were. The backup's file trees are then copied onto production's servers
                      (rsync --delete: each tree becomes the DR one; files production wrote after its last backup
                      and before the failure are not kept), before any database is swapped.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from clouds.backups.description import dr_stack_description
from clouds.backups.home_databases import HomeDatabases
from clouds.databases.copies import backup_entry, locate
from core.cloud import BackupSource, DriverError


class DrHomeVerbs:
    """The failback verbs of `OpenStackDriver` (core.cloud.DrTargetDriver), beside clouds.openstack.dr's."""

    def dr_backup_source(self, production: str, target: Mapping) -> BackupSource:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        stack = self._stack(dr, env)
        description = dr_stack_description(production, env, stack, where)
        root = self._write_source(env, description)
        self._pull_file_trees(spec, stack.outputs, root, env, production)  # from the DR stack's servers, pinned
        return BackupSource(root=root, servers=tuple(backup_entry(database, stack.outputs, env, production)
                                                     for database in spec["databases"]))

    def dr_restore_home(self, production: str, backup_id: str, restore: Callable[[Path, dict], object]
                        ) -> list[str]:
        spec = self._spec(production)
        outputs = self._production_outputs(self._conn(spec), production, spec, production)
        homes = HomeDatabases({database["name"]: locate(database, outputs, production, production)
                               for database in spec["databases"]}, backup_id)
        scratch = Path(self._sources_dir()).parent / "failback" / production
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            return self._swap_home(production, backup_id, restore, scratch, homes, outputs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _swap_home(self, production: str, backup_id: str, restore, scratch: Path, homes: HomeDatabases,
                   outputs: Mapping) -> list[str]:
        homes.restore_beside(production, restore, scratch)
        try:  # the trees written in DR onto production's servers (pinned host keys), before any database moves
            self.restore_file_trees(production, scratch, production=production, outputs=outputs)
        except DriverError:
            homes.drop_sides()
            raise
        return homes.swap_in(production)
