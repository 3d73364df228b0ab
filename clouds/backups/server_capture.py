"""A database on a server (PostgreSQL, MariaDB) into the archive, in its engine's own dump format, streamed.

pg_dump's custom format, or mariadb-dump's SQL, is written straight into the tar
stream, no file in between. A tar member states its size before its data, and a dump's size is known
only at its end, so the dump is stored as consecutive parts of at most PART bytes
(held in memory one at a time):

    databases/<name>.pgdump.part-000001     (MariaDB: databases/<name>.sql.part-000001)
    databases/<name>.pgdump.part-000002 ...

Concatenated in order they are the dump, byte for byte, so a person restores it
with the engine's own tool and no Doppel (docs/restore-by-hand.md):

    zstd -dc archive.tar.zst | tar -xO --wildcards 'databases/main.pgdump.part-*' | pg_restore -d newdb
    zstd -dc archive.tar.zst | tar -xO --wildcards 'databases/main.sql.part-*' | mariadb newdb

The rows of every table, counted in the snapshot the dump reads (MariaDB: counted
from the dump's own INSERTs as they pass), go into the manifest, so a restore can be checked against them (verify.py).
"""
from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping

from clouds.backups.layout import Component
from clouds.databases import engine
from clouds.databases.servers import DatabaseError, Server

PART = 32 * 1024 * 1024
SUFFIX = {"postgresql": ".pgdump", "mariadb": ".sql"}


class ServerCaptureError(RuntimeError):
    """A server database could not be dumped; the message names it."""


def part_name(name: str, kind: str, index: int) -> str:
    return f"databases/{name}{SUFFIX[kind]}.part-{index:06d}"


def add_server_database(tar: tarfile.TarFile, entry: Mapping) -> Component:
    """Dump the database `entry` describes (a BackupSource.servers item) into `tar`, in parts."""
    kind, name = entry["kind"], entry["name"]
    try:
        dump = engine(kind).dump
    except KeyError:
        raise ServerCaptureError(f"database {name}: backups of {kind} databases are not built yet") from None
    parts = _Parts(tar, name, kind)
    server = Server.from_dict(entry["server"])
    try:
        tables = dump(server, entry["database"], parts.write)
    except DatabaseError as exc:
        raise ServerCaptureError(f"database {name} ({entry['database']} on {server.where}): {exc}") from None
    parts.flush()
    restore_server = entry.get("restore_server") or entry["server"]
    return Component(name=name, kind=kind, bytes=parts.total, files=tuple(parts.names), tables=dict(tables),
                     server={k: v for k, v in restore_server.items()}, database=entry["database"])


class _Parts:
    """Collects dump bytes and writes a tar member each time PART bytes are there (and at the end)."""

    def __init__(self, tar: tarfile.TarFile, name: str, kind: str):
        self.tar, self.name, self.kind = tar, name, kind
        self.buffer = bytearray()
        self.names: list[str] = []
        self.total = 0

    def write(self, data) -> None:
        self.buffer += data
        while len(self.buffer) >= PART:
            self._member(memoryview(self.buffer)[:PART])
            del self.buffer[:PART]

    def flush(self) -> None:
        if self.buffer or not self.names:
            self._member(memoryview(self.buffer))
            self.buffer = bytearray()

    def _member(self, data: memoryview) -> None:
        info = tarfile.TarInfo(part_name(self.name, self.kind, len(self.names) + 1))
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        self.tar.addfile(info, io.BytesIO(data))
        self.tar.members.clear()
        self.names.append(info.name)
        self.total += len(data)
