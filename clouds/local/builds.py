"""A build of the local driver: a snapshot or an environment made in a `.partial` folder beside its final place.

Snapshots and stacks complete before the call returns, unless `background=True`:
then they return IN_PROGRESS and finish on a thread, as a Heat stack or a Cinder
snapshot would, and `stack_status` / `snapshot_status` tell when they are done.

A build checks that it is still wanted before it renames its folder into place; a
failed one keeps its record and drops its data; a deleted one is set aside at once
and removed at leisure.
"""
from __future__ import annotations

import os
import secrets as _secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clouds.local import state

PARTIAL = ".partial"


class BuildCancelled(Exception):
    """The resource being built was deleted meanwhile."""


def run(background: bool, build: Callable[[], Any], owner: dict, pending: Any) -> Any:
    """Run a build now and return what it made, or start it on a thread and return `pending`."""
    def body():
        try:
            return build()
        finally:
            state.end_build(owner)

    if not background:
        return body()
    threading.Thread(target=_quietly(body), name="doppel-local-build", daemon=True).start()
    return pending


def read_status(read: Callable[[], Any], lock_file: Path, failed: str) -> Any:
    """A build's record as `read` finds it; read again under the state lock when it looks gone or `failed`.

    A build finishing between the reads of its final and its partial record (its record, its owner, its
    rename) looks gone or dead; under the lock it cannot move (it drops its owner and renames under it)."""
    found = read()
    if found is None or found.status == failed:
        with state.locked(lock_file):
            found = read()
    return found


def check_still_ours(partial: Path, cancel: threading.Event) -> None:
    if cancel.is_set() or not (partial / "owner.json").exists():
        raise BuildCancelled()


def record_failure(partial: Path, write_record: Callable[[], None]) -> None:
    """Keep the failed attempt's record (for status and find_tagged), drop its data."""
    if not partial.is_dir():
        return  # deleted meanwhile: nothing to record
    shutil.rmtree(partial / "root", ignore_errors=True)
    try:
        write_record()
        (partial / "owner.json").unlink(missing_ok=True)
    except FileNotFoundError:
        pass  # deleted while we wrote


def set_aside(*folders: Path) -> list[Path]:
    """Rename folders out of sight at once (caller holds the lock); removing them can then take its time."""
    moved = []
    for folder in folders:
        if folder.exists():
            owner = state.read_json(folder / "owner.json")
            if owner:
                state.cancel_build(owner)
            trash = folder.with_name(f".deleting-{folder.name}-{_secrets.token_hex(4)}")
            os.rename(folder, trash)
            moved.append(trash)
    return moved


def describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def _quietly(body: Callable[[], Any]) -> Callable[[], None]:
    """A thread target that keeps a failed background build's error in its status, not on stderr."""
    def run():
        try:
            body()
        except Exception:  # noqa: BLE001 - the error is kept in the build's status
            pass
    return run


def interrupted(status: str, in_progress: str, complete: str, partial: Path) -> bool:
    """Whether a build recorded in `partial` stopped with its builder: one in progress, or one recorded complete
    whose builder died before renaming it into place. A complete record without its owner is one whose builder
    died between dropping the owner and the rename (both under the lock), or one doing that right now: a status
    read tells them apart by reading again under the lock."""
    owner = state.read_json(partial / "owner.json")
    if status == complete and owner is None:
        return True
    return status in (in_progress, complete) and not state.builder_alive(owner)
