"""Doppel's functions, one file each. FUNCTIONS is the explicit registry the worker serves;
a test checks it against the files in this folder, so a function cannot be forgotten."""
from functions import (
    audit,
    backup,
    clone,
    configure,
    drill,
    failback,
    failover,
    notify,
    poll,
    prune,
    restore,
    snapshot,
    sync,
    teardown,
)

FUNCTIONS = [audit, snapshot, clone, configure, backup, teardown, prune, restore, poll, notify,
             failover, failback, sync, drill]
BY_NAME = {function.NAME: function for function in FUNCTIONS}


def select(only: str | None) -> list:
    """The functions named in a comma-separated `--only` list (all when empty)."""
    if not only:
        return list(FUNCTIONS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown function(s) {', '.join(unknown)}; known: {', '.join(sorted(BY_NAME))}")
    return [BY_NAME[name] for name in names]
