"""Rewriting one key of a config file, keeping everything else in the file as it was.

Formats: `ini`, `env` (.env files), `yaml`, `json` and `php` (`define('KEY', value);`).
Keys are dotted for nesting (`database.path` is key `path` of section `database` in
ini, of mapping `database` in YAML/JSON); `env` and `php` keys are flat names.

Edits are surgical: ini, .env and PHP are edited line by line, and YAML is edited at
the exact position the YAML parser reports for the value, so comments, order and
layout survive. JSON has no comments; its key order and indentation are kept.
A key that is not there is added where a person would add it. Each format's editor
and reader are in formats/, one module per format.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clouds.rewrite.formats import env_file, ini_file, json_file, php_file, yaml_file
from clouds.rewrite.formats.text import RewriteError
from schemas.vocabulary import CONFIG_FORMATS, detect_format

__all__ = ["CONFIG_FORMATS", "RewriteError", "detect_format", "read_value", "replace_text", "rewrite_file",
           "rewrite_text"]


def rewrite_text(text: str, fmt: str, key: str, value: Any) -> str:
    """`text` with `key` set to `value` in format `fmt`; everything else kept."""
    try:
        editor = _EDITORS[fmt]
    except KeyError:
        raise RewriteError(f"unknown config format {fmt!r}; use one of {', '.join(CONFIG_FORMATS)}") from None
    return editor(text, key, value)


def read_value(text: str, fmt: str, key: str) -> Any:
    """The value of `key` as the format's own reader sees it (None when absent)."""
    return _READERS[fmt](text, key)


def rewrite_file(path: Path, fmt: str, changes: Iterable[tuple[str, Any]]) -> None:
    """Apply every (key, value) change to the file at `path`, written once, atomically."""
    path = Path(path)
    text = path.read_text()
    for key, value in changes:
        try:
            text = rewrite_text(text, fmt, key, value)
        except RewriteError as exc:
            raise RewriteError(f"{path.name}: {exc}") from None
    replace_text(path, text)


def replace_text(path: Path, text: str) -> None:
    """Write `text` over `path` atomically (a reader never sees half a file), keeping its mode."""
    tmp = path.with_name(f".{path.name}.doppel-tmp")
    tmp.write_text(text)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


_EDITORS = {"ini": ini_file.rewrite, "env": env_file.rewrite, "yaml": yaml_file.rewrite, "json": json_file.rewrite,
            "php": php_file.rewrite}
_READERS = {"ini": ini_file.read, "env": env_file.read, "yaml": yaml_file.read, "json": json_file.read,
            "php": php_file.read}
