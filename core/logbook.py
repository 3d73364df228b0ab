"""The logbook: which environments' logs are kept in the store, until when, and the prints of their secrets.

The store's `logs.json` files are the truth about kept logs (clouds/logs/keeper.py); this
table indexes them for `env show`, the status page and pruning. Secret prints are
the salted hashes of the secrets Doppel generated for each request (core.secrets),
never the values: what masking a log line needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, and_, select, update
from sqlalchemy.engine import Engine

from core.secrets import GeneratedSecrets, secret_print

metadata = MetaData()

kept_logs_table = Table(
    "kept_logs", metadata,
    Column("key", String(255), primary_key=True),  # the store prefix: _logs/<env>/<collected>-<digest>/
    Column("env", String(64), nullable=False, index=True),
    Column("request_id", String(255), nullable=False, index=True),
    Column("production", String(64)),
    Column("store", String(255), nullable=False),
    Column("span_from", DateTime(timezone=True)),
    Column("span_to", DateTime(timezone=True), nullable=False),
    Column("size", Integer, nullable=False),
    Column("files", Integer, nullable=False),
    Column("kept_until", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
)

secret_prints_table = Table(
    "environment_secret_prints", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(255), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("length", Integer, nullable=False),
    Column("print", String(64), nullable=False),
)


@dataclass(frozen=True)
class KeptLogs:
    key: str
    env: str
    request_id: str
    production: str | None
    store: str
    span_from: datetime | None
    span_to: datetime
    size: int
    files: int
    kept_until: datetime
    deleted_at: datetime | None


def _utc(moment):
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _entry(row) -> KeptLogs:
    return KeptLogs(row.key, row.env, row.request_id, row.production, row.store, _utc(row.span_from),
                    _utc(row.span_to), row.size, row.files, _utc(row.kept_until), _utc(row.deleted_at))


class Logbook:
    def __init__(self, engine: Engine, clock=lambda: datetime.now(timezone.utc)):
        self._engine = engine
        self._clock = clock

    # -- kept logs -------------------------------------------------------------
    def record(self, entry: KeptLogs) -> None:
        """Index kept logs; recording the same key again replaces what was recorded."""
        values = {k: v for k, v in entry.__dict__.items()}
        with self._engine.begin() as conn:
            if conn.execute(select(kept_logs_table.c.key).where(kept_logs_table.c.key == entry.key)).first():
                conn.execute(update(kept_logs_table).where(kept_logs_table.c.key == entry.key).values(**values))
            else:
                conn.execute(kept_logs_table.insert().values(**values))

    def deleted(self, keys) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(kept_logs_table).where(kept_logs_table.c.key.in_(list(keys)))
                         .values(deleted_at=self._clock()))

    def kept(self, env: str | None = None) -> list[KeptLogs]:
        """Logs still in the store (not pruned), oldest first; of one environment name when given."""
        query = select(kept_logs_table).where(kept_logs_table.c.deleted_at.is_(None))
        if env:
            query = query.where(kept_logs_table.c.env == env)
        with self._engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query.order_by(kept_logs_table.c.span_to,
                                                                   kept_logs_table.c.key))]

    def of_request(self, request_id: str) -> KeptLogs | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(kept_logs_table).where(and_(kept_logs_table.c.request_id == request_id,
                                                                  kept_logs_table.c.deleted_at.is_(None)))).first()
        return _entry(row) if row else None

    # -- generated secrets ---------------------------------------------------------
    def remember_secrets(self, request_id: str, secrets: dict[str, str]) -> None:
        """Keep the prints (never the values) of the secrets generated for a request."""
        if not secrets:
            return
        with self._engine.begin() as conn:
            conn.execute(secret_prints_table.insert(), [
                {"request_id": request_id, "name": name, "length": len(value),
                 "print": secret_print(request_id, value)} for name, value in secrets.items()])

    def secrets_of(self, request_id: str) -> GeneratedSecrets:
        with self._engine.connect() as conn:
            rows = conn.execute(select(secret_prints_table.c.length, secret_prints_table.c["print"]).where(
                secret_prints_table.c.request_id == request_id)).all()
        return GeneratedSecrets(request_id, {(length, value) for length, value in rows})
