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

import hashlib
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from clouds.backups.description import dr_stack_description
from clouds.backups.server_restore import check
from clouds.databases.copies import backup_entry, locate
from clouds.databases.engines import ENGINES
from clouds.databases.servers import DatabaseError
from core.cloud import BackupSource, DriverError

log = logging.getLogger(__name__)
NAME_MAX = 63  # PostgreSQL's identifier limit; MariaDB's is 64


def _named(database: str, suffix: str) -> str:
    return database[:NAME_MAX - len(suffix)] + suffix


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
        digest = hashlib.sha256(backup_id.encode()).hexdigest()[:6]
        homes, targets = {}, {}
        for database in spec["databases"]:
            server, name = locate(database, outputs, production, production)
            side = _named(name, f"_fb{digest}")
            homes[database["name"]] = (server, name, side)
            targets[database["name"]] = {"kind": database["kind"], "server": server.to_dict(), "database": side}
        scratch = Path(self._sources_dir()).parent / "failback" / production
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            return self._swap_home(production, backup_id, restore, scratch, targets, homes, outputs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _swap_home(self, production: str, backup_id: str, restore, scratch: Path, targets: dict, homes: dict,
                   outputs: Mapping) -> list[str]:
        try:
            manifest = restore(scratch, targets)
        except DatabaseError as exc:
            raise DriverError(f"cannot restore backup {backup_id} beside production {production}'s databases: "
                              f"{exc}; production is unchanged", env=production) from None
        problems = [problem for component in manifest.server_databases
                    for problem in check(manifest, component, homes[component.name][0], homes[component.name][2])]
        if problems:
            for server, _, side in homes.values():
                ENGINES[server.engine].drop(server, side)
            raise DriverError(f"backup {backup_id} did not restore whole beside production {production}'s "
                              f"databases ({'; '.join(problems)}); production is unchanged", env=production)
        try:  # the trees written in DR onto production's servers (pinned host keys), before any database moves
            self.restore_file_trees(production, scratch, production=production, outputs=outputs)
        except DriverError:
            for server, _, side in homes.values():
                ENGINES[server.engine].drop(server, side)
            raise
        kept, digest = [], hashlib.sha256(backup_id.encode()).hexdigest()[:6]
        for server, name, side in homes.values():
            engine = ENGINES[server.engine]
            old = _named(name, f"_pre_fb{digest}")
            if engine.exists(server, old):
                engine.drop(server, name)  # an earlier attempt kept production's already: `name` is its restore
            elif engine.exists(server, name):
                engine.rename(server, name, old)
            if engine.exists(server, old):
                kept.append(f"{old} on {server.where}")
            engine.rename(server, side, name)
            log.info("failback of %s: database %s now holds backup %s", production, name, backup_id)
        return kept
