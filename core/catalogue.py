"""The backup catalogue: every backup Doppel knows of, its verification, and what was pruned.

The store's manifests are the truth; this table is an index of them, rebuilt by
`doppel backup sync` (say, on a new Doppel host pointed at an old store).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, and_, select, update
from sqlalchemy.engine import Engine

metadata = MetaData()

backups_table = Table(
    "backups", metadata,
    Column("id", String(64), primary_key=True),
    Column("env", String(64), nullable=False, index=True),
    Column("store", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("reason", String(32)),
    Column("verified_at", DateTime(timezone=True)),
    Column("verify_ok", Boolean),
    Column("verify_detail", Text),
    Column("deleted_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class BackupEntry:
    id: str
    env: str
    store: str
    created_at: datetime
    size: int
    sha256: str
    reason: str | None
    verified_at: datetime | None
    verify_ok: bool | None
    verify_detail: str | None
    deleted_at: datetime | None


def _utc(moment):
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _entry(row) -> BackupEntry:
    return BackupEntry(row.id, row.env, row.store, _utc(row.created_at), row.size, row.sha256, row.reason,
                       _utc(row.verified_at), row.verify_ok, row.verify_detail, _utc(row.deleted_at))


class Catalogue:
    def __init__(self, engine: Engine, clock=lambda: datetime.now(timezone.utc)):
        self._engine = engine
        self._clock = clock

    def record(self, manifest, store: str, reason: str | None) -> None:
        """Index a complete backup (its manifest); recording it again changes nothing."""
        with self._engine.begin() as conn:
            if conn.execute(select(backups_table.c.id).where(backups_table.c.id == manifest.backup_id)).first():
                conn.execute(update(backups_table).where(backups_table.c.id == manifest.backup_id)
                             .values(deleted_at=None, store=store))
                return
            conn.execute(backups_table.insert().values(
                id=manifest.backup_id, env=manifest.env, store=store, created_at=manifest.created,
                size=manifest.size, sha256=manifest.sha256, reason=reason))

    def verified(self, backup_id: str, ok: bool, detail: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(backups_table).where(backups_table.c.id == backup_id)
                         .values(verified_at=self._clock(), verify_ok=ok, verify_detail=detail))

    def deleted(self, backup_ids) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(backups_table).where(backups_table.c.id.in_(list(backup_ids)))
                         .values(deleted_at=self._clock()))

    def get(self, backup_id: str) -> BackupEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(backups_table).where(backups_table.c.id == backup_id)).first()
        return _entry(row) if row else None

    def list(self, env: str | None = None, *, include_deleted: bool = False) -> list[BackupEntry]:
        query = select(backups_table).order_by(backups_table.c.created_at, backups_table.c.id)
        if env:
            query = query.where(backups_table.c.env == env)
        if not include_deleted:
            query = query.where(backups_table.c.deleted_at.is_(None))
        with self._engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def verified_ids(self, env: str) -> set[str]:
        with self._engine.connect() as conn:
            return {r.id for r in conn.execute(select(backups_table.c.id).where(
                and_(backups_table.c.env == env, backups_table.c.verify_ok.is_(True))))}

    def newest(self, env: str, *, verified_only: bool = False) -> BackupEntry | None:
        entries = [e for e in self.list(env) if e.verify_ok or not verified_only]
        return entries[-1] if entries else None
