"""Restoring in place: a tree restored beside an environment's or production's directory, then swapped in.

Only the local driver has directories to swap; it reaches this through its
`restore_in_place` verb (the DR copy's refresh, a restore over a living environment) and
`dr_restore_home` (failback: production's directory, and its server databases restored
beside its own, checked and swapped in by clouds.backups.home_databases).
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from clouds.backups.home_databases import HomeDatabases
from clouds.backups.layout import Manifest
from clouds.databases.servers import Server


def replace_tree(root: Path, restore: Callable[[Path], object], *, keep_old: bool, label: str) -> Path | None:
    """Restore into a sibling of `root`, then swap it in; `root` is never left half-written.

    The old tree is renamed aside first and, with `keep_old`, kept (returned), so
    nothing is lost if anything fails: a failed restore leaves `root` untouched.
    """
    root = Path(root)
    incoming = root.parent / f".{root.name}.incoming-{label}"
    shutil.rmtree(incoming, ignore_errors=True)  # left by an attempt that died
    restore(incoming)
    aside = root.parent / f".{root.name}.before-{label}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    if root.exists():
        root.rename(aside)
    incoming.rename(root)
    if keep_old and aside.exists():
        return aside
    shutil.rmtree(aside, ignore_errors=True)
    return None


def restore_home(root: Path, homes: Mapping[str, tuple[Server, str]], production: str, backup_id: str,
                 restore: Callable[[Path, dict], Manifest]) -> list[str]:
    """A failback into production's directory and its server databases (`homes`: component -> (server,
    database)): the databases restored beside, checked, the tree swapped in, then the databases; what production
    held before is kept (its tree aside, its databases renamed) and named in the list returned."""
    databases = HomeDatabases(homes, backup_id)
    kept = replace_tree(root, lambda into: databases.restore_beside(production, restore, into), keep_old=True,
                        label=f"failback-{backup_id}")
    return [*([str(kept)] if kept else []), *databases.swap_in(production)]
