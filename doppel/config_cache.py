"""The last validated configuration, kept between commands so that an unchanged doppel.yaml is not parsed and
validated again by every command (PyYAML, marshmallow and the config schemas cost a command about 0.15 s to
import, more than the rest of `doppel env list` besides the database).

What is kept is the result of validating one file's exact bytes, with the code that validated it: its key
hashes those bytes, the source of the schemas and of doppel/config.py, the Python version, and where PyYAML's
and marshmallow's files are and when they were written. Validation reads nothing else (no environment
variable, no other file), so the same key gives the same result; a changed byte, a changed schema or an upgraded
library gives another key, and the file is validated again. Only a valid configuration is kept, only when it is
plain JSON data (anything else is validated every time), and an error reading or writing the cache only costs
the time it was meant to save.

Where: $DOPPEL_CACHE_DIR, else $XDG_CACHE_HOME/doppel, else ~/.cache/doppel; one small file per configuration
file (mode 0600, in a folder made 0700), replaced when the key changes. DOPPEL_CACHE_DIR=off turns it off.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("yaml", "marshmallow")  # what parses and validates the file, besides Doppel's own code


def cache_dir() -> Path | None:
    given = os.environ.get("DOPPEL_CACHE_DIR")
    if given == "off":
        return None
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "doppel"


def key(document: bytes) -> str:
    """What decides the validation's result, hashed."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    for source in (*sorted((ROOT / "schemas").glob("*.py")), ROOT / "doppel" / "config.py"):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    for library in LIBRARIES:
        spec = find_spec(library)  # found, not imported
        for location in (spec.submodule_search_locations or []) if spec else []:
            with os.scandir(location) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.is_file():
                        stat = entry.stat()
                        digest.update(f"{entry.path}\0{stat.st_mtime_ns}\0{stat.st_size}\0".encode())
    digest.update(b"document\0" + document)
    return digest.hexdigest()


def _place(path: Path | None) -> Path | None:
    """The cache file of the configuration file `path` (None: no file, the defaults)."""
    folder = cache_dir()
    if folder is None:
        return None
    name = hashlib.sha256(str(path).encode()).hexdigest()[:32] if path else "defaults"
    return folder / f"config-{name}.json"


def recall(path: Path | None, document: bytes) -> tuple[dict | None, str | None]:
    """(the validated configuration kept for these bytes of `path`, or None; the key to keep it under)."""
    try:
        place = _place(path)
        if place is None:
            return None, None
        wanted = key(document)
        kept = json.loads(place.read_text()) if place.is_file() else None
    except (OSError, ValueError):
        return None, None
    if isinstance(kept, dict) and kept.get("key") == wanted and isinstance(kept.get("config"), dict):
        return kept["config"], wanted
    return None, wanted


def keep(path: Path | None, wanted: str | None, config: dict) -> None:
    """Keep a validated configuration under `wanted`, when it is plain JSON data (it loads back exactly)."""
    place = _place(path)
    if wanted is None or place is None or not _plain(config):
        return
    try:
        place.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = place.with_name(f"{place.name}.{os.getpid()}.tmp")
        text = json.dumps({"key": wanted, "config": config}, allow_nan=False)
        # readable by its owner only, as doppel.yaml should be: it names servers, accounts and parameters
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(text)
        os.replace(temporary, place)  # a reader sees the old file or the new one, never half of one
    except (OSError, ValueError):
        pass


def _plain(value) -> bool:
    """Whether `value` is made of JSON's own types only (exactly: no tuple, subclass or non-string key)."""
    kind = type(value)
    if value is None or kind in (str, int, bool):
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if kind is list:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(type(name) is str and _plain(item) for name, item in value.items())
    return False
