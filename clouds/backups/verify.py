"""Verifying a backup: its archive against the manifest, then every database's PRAGMA integrity_check.

The archive is extracted (extract.py) into a scratch directory that is removed
afterwards, whatever was found. Each server database (PostgreSQL, MariaDB) is restored into
a scratch database on the server its manifest entry names, its rows per table
compared with those counted at backup time and its constraints checked, then
dropped, whatever was found.
"""
from __future__ import annotations

import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from clouds.backups.extract import IntegrityError, extract
from clouds.backups.layout import Manifest
from clouds.backups.manifests import find_backup
from clouds.backups.pipe import Progress
from clouds.backups.server_restore import DatabaseRestores, check
from clouds.databases import engine
from clouds.databases.servers import DatabaseError, Server, scratch_database
from core.stores import ObjectStore


@dataclass
class VerifyResult:
    """What a verification found; `problems` are messages that name the backup and say what is wrong."""
    backup_id: str
    env: str
    ok: bool
    archive_ok: bool
    databases: dict[str, str] = field(default_factory=dict)   # name -> "ok" or what integrity_check said
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.ok:
            return f"backup {self.backup_id} of {self.env}: verified ({len(self.databases)} database(s) intact)"
        return "; ".join(self.problems)


def verify(store: ObjectStore, backup: str | Manifest, *, env: str | None = None, scratch_dir: Path | None = None,
           progress: Progress | None = None) -> VerifyResult:
    """Download, check sha256 and size, extract into a scratch directory and run PRAGMA integrity_check.

    Never raises for a bad backup: the result says what is wrong (the caller
    records it). A missing backup raises BackupNotFound.
    """
    started = time.monotonic()
    manifest = backup if isinstance(backup, Manifest) else find_backup(store, backup, env)
    result = VerifyResult(manifest.backup_id, manifest.env, ok=False, archive_ok=False)
    scratch = Path(tempfile.mkdtemp(prefix=f"doppel-verify-{manifest.backup_id}-", dir=scratch_dir))
    token = secrets.token_hex(4)
    targets = {c.name: (Server.from_dict(c.server), scratch_database("verify", f"{token}_{c.name}"))
               for c in manifest.server_databases}
    sinks = DatabaseRestores(manifest, targets) if targets else None
    try:
        try:
            extract(store, manifest, scratch / "root", progress, divert=sinks)
        finally:
            if sinks is not None:
                sinks.finish()
        result.archive_ok = True
        if sinks is not None:
            _check_server_databases(manifest, sinks, result)
        for database in manifest.databases:
            result.databases[database.name] = _integrity(scratch / "root" / database.name)
            if result.databases[database.name] != "ok":
                result.problems.append(f"backup {manifest.backup_id} of {manifest.env}: database {database.name} "
                                       f"fails PRAGMA integrity_check: {result.databases[database.name]}")
    except IntegrityError as exc:
        result.problems.append(str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for server, database in targets.values():
            _drop_quietly(server, database)
    result.ok = result.archive_ok and not result.problems
    result.seconds = time.monotonic() - started
    return result


def _check_server_databases(manifest: Manifest, sinks: DatabaseRestores, result: VerifyResult) -> None:
    for component in manifest.server_databases:
        if component.name in sinks.failures:
            result.databases[component.name] = "does not restore"
            result.problems.append(f"backup {manifest.backup_id} of {manifest.env}: database {component.name} does "
                                   f"not restore: {sinks.failures[component.name]}")
        elif component.name not in sinks.finished:
            result.databases[component.name] = "missing from the archive"
            result.problems.append(f"backup {manifest.backup_id} of {manifest.env}: database {component.name} is "
                                   "missing from the archive")
        else:
            server, database = sinks.targets[component.name]
            try:
                problems = check(manifest, component, server, database)
            except DatabaseError as exc:  # a restored database too broken to be checked is a finding, not a crash
                problems = [f"backup {manifest.backup_id} of {manifest.env}: database {component.name}: {exc}"]
            result.databases[component.name] = "ok" if not problems else "; ".join(problems)
            result.problems += problems


def _drop_quietly(server: Server, database: str) -> None:
    try:
        engine(server.engine).drop(server, database)
    except DatabaseError:
        pass  # reported by the check that failed; a scratch database's name says what it was


def _integrity(path: Path) -> str:
    if not path.is_file():
        return "missing from the archive"
    try:
        conn = sqlite3.connect(path)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"cannot be opened: {exc}"
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])
