"""Where a backup lives in a store, what its id says, and its manifest.

Object layout, the same in every store (a directory, a Swift container, an S3 bucket):

    <env>/<backup_id>/archive.tar.zst    the archive: one tar stream, zstd-compressed
                                         (archive.tar.gz when gzip was chosen)
    <env>/<backup_id>/manifest.json      written LAST: a backup without it is incomplete

`backup_id` is `YYYYMMDDTHHMMSSZ-xxxxxx`: the UTC time the backup started and six
hex digits, random or derived from the event that asked for it, so ids sort by
time and two backups in the same second differ. A tag of up to two letters may
come before the digits (`fb`: a failback's backup of the DR copy). Which of two
backups is newer is told by the manifest's `created`, kept to the microsecond;
the id breaks a tie.
In Swift the archive's segments live in `<container>_segments`; in S3 they are the
parts of a multipart upload. Neither shows up under the keys above until complete.

The manifest (JSON, `format: 1`):

    {"format": 1, "backup_id": "...", "env": "prod",
     "created": "2026-11-22T03:15:00.402117Z", "completed": "2026-11-22T03:16:40.090512Z",
     "archive": {"key": "prod/<id>/archive.tar.zst", "compression": "zstd",
                 "size": <bytes stored>, "sha256": "<hex of the bytes stored>"},
     "uncompressed_size": <bytes of the tar stream>,
     "components": [{"name": "files", "kind": "files", "count": 12, "bytes": 34567},
                    {"name": "data/app.db", "kind": "sqlite", "bytes": 8192,
                     "journal_mode": "wal", "files": ["data/app.db", "data/app.db-wal"]},
                    {"name": "orders", "kind": "postgresql", "bytes": 81920, "database": "orders",
                     "files": ["databases/orders.pgdump.part-000001"],
                     "tables": {"public.customer": 60},
                     "server": {"engine": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "doppel",
                                "password_env": "DOPPEL_PG_PASSWORD"}}],
     "warnings": [], "tool": "doppel 0.1.0"}

sha256 and size are of the compressed bytes exactly as stored, so `sha256sum` of
a downloaded archive can be compared with the manifest by hand. A server database
(postgresql) is its engine's dump in consecutive parts (server_capture.py), the rows
of each table as dumped, and the server a restore or a verification makes its
database on (never a password: the variable that holds it).
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

FORMAT = 1
MANIFEST_NAME = "manifest.json"
ARCHIVE_NAMES = {"zstd": "archive.tar.zst", "gzip": "archive.tar.gz"}
BACKUP_ID = re.compile(r"^(\d{8}T\d{6}Z)-([a-z]{0,2}[0-9a-f]{6})$")
ENV = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")


class ManifestError(ValueError):
    """A manifest that cannot be read or does not match where it was found."""


def new_backup_id(now: datetime | None = None) -> str:
    """A fresh id: the start time in UTC (so ids sort by time) and 6 random hex digits."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def backup_time(backup_id: str) -> datetime:
    """When the backup with this id started (UTC)."""
    match = BACKUP_ID.match(backup_id)
    if not match:
        raise ValueError(f"{backup_id!r} is not a backup id (expected e.g. 20261122T031500Z-a1b2c3)")
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def check_env(env: str) -> str:
    if not ENV.match(env or ""):
        raise ValueError(f"{env!r} is not an environment name (2-40 lower-case letters, digits and '-')")
    return env


def backup_prefix(env: str, backup_id: str) -> str:
    return f"{check_env(env)}/{backup_id}/"


def archive_key(env: str, backup_id: str, compression: str) -> str:
    return backup_prefix(env, backup_id) + ARCHIVE_NAMES[compression]


def manifest_key(env: str, backup_id: str) -> str:
    return backup_prefix(env, backup_id) + MANIFEST_NAME


def split_key(key: str) -> tuple[str, str, str] | None:
    """(env, backup_id, name) for a key in the backup layout, None for anything else."""
    parts = key.split("/")
    if len(parts) == 3 and ENV.match(parts[0]) and BACKUP_ID.match(parts[1]):
        return parts[0], parts[1], parts[2]
    return None


@dataclass(frozen=True)
class Component:
    """One part of an environment in the archive: its files, one SQLite database, or one server database."""
    name: str
    kind: str                       # files | sqlite | postgresql | mariadb
    bytes: int
    count: int | None = None        # files: how many
    journal_mode: str | None = None  # sqlite: as found (wal, delete, ...)
    files: tuple[str, ...] = ()     # sqlite: the database file and its -wal; a server database: its dump's parts
    tables: dict | None = None      # a server database: rows per schema.table, as dumped
    server: dict | None = None      # a server database: where restores and verifications make their database
    database: str | None = None     # a server database: the database dumped

    def to_dict(self) -> dict:
        data = {"name": self.name, "kind": self.kind, "bytes": self.bytes}
        for key in ("count", "journal_mode", "tables", "server", "database"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.files:
            data["files"] = list(self.files)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Component":
        return cls(name=data["name"], kind=data["kind"], bytes=int(data["bytes"]), count=data.get("count"),
                   journal_mode=data.get("journal_mode"), files=tuple(data.get("files", ())),
                   tables=data.get("tables"), server=data.get("server"), database=data.get("database"))


@dataclass(frozen=True)
class Manifest:
    """What a complete backup holds; its presence in the store is what makes the backup complete."""
    backup_id: str
    env: str
    created: datetime
    completed: datetime
    archive_key: str
    compression: str
    size: int
    sha256: str
    uncompressed_size: int
    components: tuple[Component, ...] = ()
    warnings: tuple[str, ...] = ()
    tool: str = "doppel"
    format: int = FORMAT
    extra: dict = field(default_factory=dict)   # fields a newer Doppel wrote, kept as they were

    @property
    def key(self) -> str:
        return manifest_key(self.env, self.backup_id)

    @property
    def databases(self) -> list[Component]:
        return [c for c in self.components if c.kind == "sqlite"]

    @property
    def server_databases(self) -> list[Component]:
        return [c for c in self.components if c.kind not in ("sqlite", "files")]

    def to_dict(self) -> dict:
        return {**self.extra, "format": self.format, "backup_id": self.backup_id, "env": self.env,
                "created": _iso(self.created), "completed": _iso(self.completed),
                "archive": {"key": self.archive_key, "compression": self.compression,
                            "size": self.size, "sha256": self.sha256},
                "uncompressed_size": self.uncompressed_size,
                "components": [c.to_dict() for c in self.components],
                "warnings": list(self.warnings), "tool": self.tool}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, key: str | None = None) -> "Manifest":
        """Parse a manifest; with `key`, also check it describes the backup stored at that key."""
        try:
            data = json.loads(raw)
            manifest = cls._from_dict(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"manifest {key or ''} is unreadable: {type(exc).__name__}: {exc}") from None
        if key is not None and key != manifest.key:
            raise ManifestError(f"manifest at {key} describes {manifest.key}: copied or renamed by hand?")
        return manifest

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> "Manifest":
        if int(data["format"]) > FORMAT:
            raise ValueError(f"format {data['format']} is newer than this Doppel reads ({FORMAT}); upgrade Doppel")
        archive = data["archive"]
        known = {"format", "backup_id", "env", "created", "completed", "archive", "uncompressed_size",
                 "components", "warnings", "tool"}
        return cls(backup_id=data["backup_id"], env=data["env"], created=_parse(data["created"]),
                   completed=_parse(data["completed"]), archive_key=archive["key"],
                   compression=archive["compression"], size=int(archive["size"]), sha256=archive["sha256"],
                   uncompressed_size=int(data["uncompressed_size"]),
                   components=tuple(Component.from_dict(c) for c in data.get("components", ())),
                   warnings=tuple(data.get("warnings", ())), tool=data.get("tool", "doppel"),
                   format=int(data["format"]), extra={k: v for k, v in data.items() if k not in known})

    def summary(self) -> dict:
        """The manifest as the catalogue and the CLI show it (plain JSON types)."""
        return asdict(self) | {"created": _iso(self.created), "completed": _iso(self.completed),
                               "components": [c.to_dict() for c in self.components]}


def _iso(when: datetime) -> str:
    """RFC 3339 in UTC to the microsecond (older manifests kept whole seconds; both parse)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
