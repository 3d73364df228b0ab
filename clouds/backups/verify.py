"""Verifying a backup: its archive against the manifest, then every database's PRAGMA integrity_check.

The archive is extracted (extract.py) into a scratch directory that is removed
afterwards, whatever was found.
"""
from __future__ import annotations

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
    try:
        extract(store, manifest, scratch / "root", progress)
        result.archive_ok = True
        for database in manifest.databases:
            result.databases[database.name] = _integrity(scratch / "root" / database.name)
            if result.databases[database.name] != "ok":
                result.problems.append(f"backup {manifest.backup_id} of {manifest.env}: database {database.name} "
                                       f"fails PRAGMA integrity_check: {result.databases[database.name]}")
    except IntegrityError as exc:
        result.problems.append(str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.ok = result.archive_ok and not result.problems
    result.seconds = time.monotonic() - started
    return result


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
