"""Load and validate `doppel.yaml` (`--config`, or `DOPPEL_CONFIG`), with errors that name the key and the fix."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from marshmallow import ValidationError

from core.errors import ConfigError
from schemas.config import ConfigSchema
from schemas.production import ProductionConfigError, load_productions

DEFAULT_FILE = "doppel.yaml"


@dataclass(frozen=True)
class Config:
    raw: dict
    path: Path | None

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
        return os.environ.get("DOPPEL_AMQP_URL") or None


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
    """The configuration from `path`, `$DOPPEL_CONFIG`, ./doppel.yaml, or the defaults when none exists."""
    explicit = path or os.environ.get("DOPPEL_CONFIG")
    file = Path(explicit) if explicit else Path(DEFAULT_FILE)
    if not file.exists():
        if explicit:
            raise ConfigError(f"{file}: no such file; pass --config PATH or set DOPPEL_CONFIG to an existing file")
        return parse_config({}, None)
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of sections (bus:, productions:, ...)")
    return parse_config(document, file.resolve())


def parse_config(document: dict, path: Path | None) -> Config:
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
    return Config(loaded, path)
