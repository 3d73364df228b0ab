"""Restoring in place: a tree restored beside an environment's or production's directory, then swapped in.

Only the local driver has directories to swap; it reaches this through its
`restore_in_place` verb, which failback (production's directory) and the DR copy's
refresh (the DR environment's root) use.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


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
