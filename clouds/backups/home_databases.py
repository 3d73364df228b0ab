"""A failback's backup put into production's own server databases without ever leaving one half-written.

Each database of the backup is restored into a side database beside production's
(`<name>_fb<digest>`), its rows checked against the backup's manifest, and only then
swapped in: production's database is renamed `<name>_pre_fb<digest>` (kept: it may hold
writes made between the last backup and the failure) and the side one takes its name.
The OpenStack and AWS targets (clouds.openstack.dr_home) and the local driver (clouds.local.restores)
use it.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from clouds.backups.layout import Manifest
from clouds.backups.server_restore import check
from clouds.databases.engines import ENGINES
from clouds.databases.servers import DatabaseError, Server
from core.cloud import DriverError

log = logging.getLogger(__name__)
NAME_MAX = 63  # PostgreSQL's identifier limit; MariaDB's is 64


class HomeDatabases:
    """Production's server databases (component name -> (server, database)) and their sides for one backup."""

    def __init__(self, homes: Mapping[str, tuple[Server, str]], backup_id: str):
        self.backup_id = backup_id
        self.digest = hashlib.sha256(backup_id.encode()).hexdigest()[:6]
        self.homes = {name: (server, database, named(database, f"_fb{self.digest}"))
                      for name, (server, database) in homes.items()}

    def targets(self) -> dict[str, dict]:
        """Where the backup's databases are restored (the sides), as a driver's `database_targets` says."""
        return {name: {"kind": server.engine, "server": server.to_dict(), "database": side}
                for name, (server, _, side) in self.homes.items()}

    def restore_beside(self, production: str, restore: Callable[[Path, dict], Manifest], into: Path) -> Manifest:
        """`restore(into, targets)` the backup with its databases into the sides, each checked; DriverError saying
        what failed (the sides dropped) when one did not restore whole. Production is not touched."""
        try:
            manifest = restore(into, self.targets())
        except DatabaseError as exc:
            raise DriverError(f"cannot restore backup {self.backup_id} beside production {production}'s databases: "
                              f"{exc}; production is unchanged", env=production) from None
        problems = [problem for component in manifest.server_databases
                    for problem in check(manifest, component, self.homes[component.name][0],
                                         self.homes[component.name][2])]
        if problems:
            self.drop_sides()
            raise DriverError(f"backup {self.backup_id} did not restore whole beside production {production}'s "
                              f"databases ({'; '.join(problems)}); production is unchanged", env=production)
        return manifest

    def drop_sides(self) -> None:
        for server, _, side in self.homes.values():
            ENGINES[server.engine].drop(server, side)

    def swap_in(self, production: str) -> list[str]:
        """Each side takes its database's name, production's kept as `<name>_pre_fb<digest>`; safe to repeat
        after a crash half-way. Where the kept ones are."""
        kept = []
        for server, name, side in self.homes.values():
            engine = ENGINES[server.engine]
            old = named(name, f"_pre_fb{self.digest}")
            if engine.exists(server, old):
                if engine.exists(server, side):
                    engine.drop(server, name)  # an earlier attempt kept production's already: `name` is its restore
            elif engine.exists(server, name):
                engine.rename(server, name, old)
            if engine.exists(server, old):
                kept.append(f"{old} on {server.where}")
            if engine.exists(server, side):
                engine.rename(server, side, name)
            log.info("failback of %s: database %s now holds backup %s", production, name, self.backup_id)
        return kept


def named(database: str, suffix: str) -> str:
    return database[:NAME_MAX - len(suffix)] + suffix
