"""A backup's server databases back into databases: each dump's parts fed to the engine's restore as they stream.

`DatabaseRestores` is handed to extract() as its `divert`: the parts of a dump
(server_capture.py) go, in order, into one pg_restore (or mariadb client) that makes the database;
nothing is written to disk. Used by restore.py (into an environment's databases)
and verify.py (into scratch databases, checked, then dropped).
"""
from __future__ import annotations

from collections.abc import Mapping

from clouds.backups.layout import Component, Manifest
from clouds.databases import engine
from clouds.databases.servers import DatabaseError, Server


class DatabaseRestores:
    """Where each server database of a backup goes: component name -> (server, database)."""

    def __init__(self, manifest: Manifest, targets: Mapping[str, tuple[Server, str]]):
        self.manifest = manifest
        self.targets = dict(targets)
        self._by_part = {part: component for component in manifest.server_databases for part in component.files}
        self._open: dict[str, object] = {}
        self._pending: Component | None = None
        self.finished: list[str] = []
        self.failures: dict[str, str] = {}

    def __call__(self, member: str):
        self._finish_pending()  # the previous member, if it was a dump's last part, is written whole by now
        component = self._by_part.get(member)
        if component is None:
            return None
        if component.name in self.failures:
            return _Discard()
        restoring = self._open.get(component.name)
        if restoring is None:
            server, database = self.targets[component.name]
            try:
                restoring = self._open[component.name] = engine(component.kind).Restoring(server, database)
            except DatabaseError as exc:
                self.failures[component.name] = str(exc)
                return _Discard()
        if member == component.files[-1]:
            self._pending = component
        return restoring

    def _finish_pending(self) -> None:
        component, self._pending = self._pending, None
        if component is None:
            return
        restoring = self._open.pop(component.name)
        try:
            restoring.finish()
            self.finished.append(component.name)
        except DatabaseError as exc:
            self.failures[component.name] = str(exc)

    def finish(self) -> None:
        """After the archive's end: finish the last restore, and stop any left without its last part."""
        self._finish_pending()
        self.abort()

    def abort(self) -> None:
        """Stop every restore under way and drop its database."""
        for restoring in self._open.values():
            restoring.abort()
        self._open.clear()

    def missing(self) -> list[str]:
        return [c.name for c in self.manifest.server_databases
                if c.name not in self.finished and c.name not in self.failures]


class _Discard:
    def write(self, data) -> int:
        return len(data)


def targets_for(manifest: Manifest, databases: Mapping[str, Mapping]) -> dict[str, tuple[Server, str]]:
    """(server, database) per server database of the backup, from the driver's targets (database_targets)."""
    found = {}
    for component in manifest.server_databases:
        target = databases.get(component.name)
        if target is None:
            raise DatabaseError(f"backup {manifest.backup_id} holds database {component.name}, which the target "
                                "environment has no place for; restore it for the production it came from")
        found[component.name] = (Server.from_dict(target["server"]), target["database"])
    return found


def check(manifest: Manifest, component: Component, server: Server, database: str) -> list[str]:
    """What is wrong with a restored database: rows per table against the manifest, constraints left unvalidated."""
    engine_of_kind = engine(component.kind)
    problems = []
    found = engine_of_kind.counts(server, database, (component.tables or {}).keys())
    for table, expected in sorted((component.tables or {}).items()):
        if found.get(table) != expected:
            problems.append(f"table {table}: {found.get(table)} rows, {expected} at backup time")
    problems += [f"constraint {name} is not valid" for name in engine_of_kind.unvalidated_constraints(server, database)]
    return [f"backup {manifest.backup_id} of {manifest.env}: database {component.name}: {problem}"
            for problem in problems]
