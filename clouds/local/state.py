"""The local driver's bookkeeping on disk: atomic JSON files, one lock, and who is building what.

Several workers (threads or processes on this host) may share one state directory,
so every decision that reads-then-writes is taken under an exclusive `flock`, held
only for the decision; long copies run outside it, in a `.partial` directory marked
with its builder, so a half-made snapshot or environment is never mistaken for a
whole one, and one whose builder died is recognised as such.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_ACTIVE: dict[str, threading.Event] = {}  # builds running in this process: token -> cancel flag
_ACTIVE_GUARD = threading.Lock()


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    """Replace `path` with `data` as JSON in one step (a reader sees the old or the new, never half)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when the file is not there."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold the state directory's exclusive lock (across threads and processes)."""
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def start_build() -> tuple[dict, threading.Event]:
    """An owner record for a new build by this process, and the flag that cancels it."""
    token = secrets.token_hex(8)
    cancel = threading.Event()
    with _ACTIVE_GUARD:
        _ACTIVE[token] = cancel
    return {"pid": os.getpid(), "token": token, "started": _process_started(os.getpid())}, cancel


def end_build(owner: dict) -> None:
    with _ACTIVE_GUARD:
        _ACTIVE.pop(owner.get("token", ""), None)


def cancel_build(owner: dict) -> None:
    """Ask a build of this process to stop (it checks between files); other processes' are left."""
    with _ACTIVE_GUARD:
        flag = _ACTIVE.get(owner.get("token", ""))
    if flag:
        flag.set()


def builder_alive(owner: dict | None) -> bool:
    """Whether the build recorded in `owner` is still running (here or in another live process)."""
    if not owner:
        return False
    pid = owner.get("pid")
    if pid == os.getpid():
        with _ACTIVE_GUARD:
            return owner.get("token") in _ACTIVE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (TypeError, ValueError):
        return False
    # The pid may have been given to another process since the builder died (pids wrap around quickly on a
    # busy host): it is the builder only if it started when the builder did.
    started = owner.get("started")
    return started is None or _process_started(int(pid)) in (None, started)


def _process_started(pid: int) -> str | None:
    """When a process started (clock ticks since boot, /proc/<pid>/stat field 22); None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None
