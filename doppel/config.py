"""Find, load and validate `doppel.yaml`, with errors that name the key and the fix, and say where it looked.

The file is `--config PATH`, else `$DOPPEL_CONFIG`, else the first that exists of
SEARCH (./doppel.yaml, then the user's and the host's). With none, the defaults
apply (no productions) and `Config.origin` says where Doppel looked.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import ConfigError
from doppel import config_cache

DEFAULT_FILE = "doppel.yaml"


def search_path() -> list[Path]:
    """Where a doppel.yaml is looked for when neither --config nor DOPPEL_CONFIG names one, in order."""
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path(DEFAULT_FILE), home / "doppel" / DEFAULT_FILE, Path("/etc/doppel") / DEFAULT_FILE]


@dataclass(frozen=True)
class Config:
    raw: dict
    path: Path | None
    origin: str = "given"  # how the file was found: --config, DOPPEL_CONFIG, search, or none found

    @property
    def where(self) -> str:
        """The file in use, or a sentence saying that none was found and where Doppel looked."""
        return str(self.path) if self.path else self.origin

    def __getitem__(self, name):
        return self.raw[name]

    @property
    def state_dir(self) -> Path:
        path = Path(self.raw["state_dir"])
        if not path.is_absolute() and self.path is not None:
            path = self.path.parent / path
        return path

    @property
    def amqp_url(self) -> str | None:
        """DOPPEL_AMQP_URL as given: one URL, or a cluster's nodes' URLs comma-separated."""
        return os.environ.get("DOPPEL_AMQP_URL") or None

    @property
    def amqp_urls(self) -> list[str]:
        """The RabbitMQ nodes to connect to, in order (empty: the embedded bus)."""
        from core.broker import node_urls  # not at start-up: only a process that talks to the bus asks
        return node_urls(self.amqp_url)


def flatten_errors(messages, path="") -> list[str]:
    lines = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            here = f"{path}.{key}" if path and key != "_schema" else (path or str(key))
            lines += flatten_errors(value, here)
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        lines.append(f"{path}: {'; '.join(_with_fix(m) for m in messages)}")
    elif isinstance(messages, list):
        for value in messages:
            lines += flatten_errors(value, path)
    else:
        lines.append(f"{path}: {messages}")
    return lines


def _with_fix(message: str) -> str:
    if message == "Unknown field.":
        return "unknown key; remove it or correct its spelling (docs/configuration.md lists every key)"
    if message == "Missing data for required field.":
        return "required; add it"
    return message


def load_config(path: str | os.PathLike | None = None) -> Config:
    """The configuration from `path`, `$DOPPEL_CONFIG`, the search path, or the defaults when none exists."""
    origin = "--config" if path else "DOPPEL_CONFIG" if os.environ.get("DOPPEL_CONFIG") else None
    explicit = path or os.environ.get("DOPPEL_CONFIG")
    if explicit:
        file = Path(explicit)
        if not file.is_file():
            why = "is a directory" if file.is_dir() else "no such file"
            raise ConfigError(f"{file} ({origin}): {why}; pass --config PATH or set DOPPEL_CONFIG to an existing "
                              "file")
    else:
        searched = search_path()
        file = next((candidate for candidate in searched if candidate.is_file()), None)
        if file is None:
            looked = ", ".join(str(candidate.absolute()) for candidate in searched)
            return _validated(None, b"", dict, f"no doppel.yaml found (looked at {looked}; --config PATH or "
                                             "DOPPEL_CONFIG names another); the defaults apply, with no productions")
        origin = "found at " + str(file)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    return _validated(file.resolve(), text.encode(), lambda: _parse_yaml(file, text), origin)


def _validated(path: Path | None, document: bytes, read: Callable[[], dict], origin: str) -> Config:
    """The file's configuration as validated last time these very bytes were (doppel/config_cache.py), else
    parsed and validated now."""
    kept, key = config_cache.recall(path, document)
    if kept is not None:
        return Config(kept, path, origin)
    config = parse_config(read(), path, origin)
    config_cache.keep(path, key, config.raw)
    return config


def _parse_yaml(file: Path, text: str) -> dict:
    import yaml
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of sections (bus:, productions:, ...)")
    return document


def parse_config(document: dict, path: Path | None, origin: str = "given") -> Config:
    from marshmallow import ValidationError

    from schemas.config import ConfigSchema
    from schemas.production import ProductionConfigError, load_productions
    where = str(path) if path else "configuration"
    try:
        loaded = ConfigSchema().load(document)
    except ValidationError as exc:
        lines = "\n  ".join(flatten_errors(exc.messages))
        raise ConfigError(f"{where} is invalid:\n  {lines}") from None
    try:
        loaded["productions"] = load_productions(loaded["productions"])
    except ProductionConfigError as exc:
        lines = "\n  ".join(exc.lines)
        raise ConfigError(f"{where} is invalid:\n  {lines}") from None
    return Config(loaded, path, origin)
