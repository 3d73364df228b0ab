"""The environment registry: each environment's state machine, owner, TTL and endpoints.

An environment is one request's copy of a production. Its name is unique among
living environments; a deleted or failed one frees the name. Every transition is
recorded with the event that caused it, so `doppel env show` can tell its story.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, and_, insert, select, update
from sqlalchemy.engine import Engine

metadata = MetaData()

REQUESTED, SNAPSHOTTING, CLONING, CONFIGURING, READY, EXPIRING, DELETED, FAILED = (
    "requested", "snapshotting", "cloning", "configuring", "ready", "expiring", "deleted", "failed")
LIVING = (REQUESTED, SNAPSHOTTING, CLONING, CONFIGURING, READY, EXPIRING)
ENDED = (DELETED, FAILED)
# Where each state may go next. Staying in the same state is always allowed (a replay).
NEXT = {
    REQUESTED: {SNAPSHOTTING, CLONING, FAILED, EXPIRING},  # straight to cloning: a restore's backup is its snapshot
    SNAPSHOTTING: {CLONING, FAILED, EXPIRING},
    CLONING: {CONFIGURING, FAILED, EXPIRING},
    CONFIGURING: {READY, FAILED, EXPIRING},
    READY: {EXPIRING, FAILED},
    EXPIRING: {DELETED, FAILED},
    FAILED: {REQUESTED},  # only the same request, replayed after its cause was fixed (`doppel dlq replay`)
    DELETED: set(),
}

envs_table = Table(
    "environments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
    Column("request_id", String(255), nullable=False, unique=True),  # source/id of env.requested
    Column("production", String(64), nullable=False),
    Column("state", String(16), nullable=False, index=True),  # the living ones: env list, the expiry sweep
    Column("owner", String(128)),
    Column("data_version", String(128)),
    Column("ttl_seconds", Integer),
    Column("expires_at", DateTime(timezone=True)),
    Column("endpoints", Text),
    Column("reason", Text),
    Column("correlation_id", String(255)),
    Column("reply_to", Text),  # where the requester waits for the outcome (a chat command's response URL)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

transitions_table = Table(
    "environment_transitions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("env_id", Integer, nullable=False, index=True),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("event_id", String(255)),
    Column("reason", Text),
    Column("at", DateTime(timezone=True), nullable=False),
)


class TransitionRefused(ValueError):
    """A transition the state machine does not allow (e.g. ready -> cloning)."""


@dataclass(frozen=True)
class Environment:
    id: int
    name: str
    request_id: str
    production: str
    state: str
    owner: str | None
    data_version: str | None
    ttl_seconds: int | None
    expires_at: datetime | None
    endpoints: dict
    reason: str | None
    correlation_id: str | None
    reply_to: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def living(self) -> bool:
        return self.state in LIVING


@dataclass(frozen=True)
class Transition:
    from_state: str | None
    to_state: str
    event_id: str | None
    reason: str | None
    at: datetime


def _utc(moment):
    if moment is not None and moment.tzinfo is None:  # SQLite hands back naive datetimes
        return moment.replace(tzinfo=timezone.utc)
    return moment


def _row(row) -> Environment:
    # One dict of the row, then plain look-ups: a Row's attribute look-up by name costs about 1 µs, and `env list`
    # over a thousand environments made 15,000 of them.
    v = dict(zip(row._fields, row))
    return Environment(v["id"], v["name"], v["request_id"], v["production"], v["state"], v["owner"],
                       v["data_version"], v["ttl_seconds"], _utc(v["expires_at"]), json.loads(v["endpoints"] or "{}"),
                       v["reason"], v["correlation_id"], v["reply_to"], _utc(v["created_at"]), _utc(v["updated_at"]))


class Registry:
    def __init__(self, engine: Engine, clock=lambda: datetime.now(timezone.utc)):
        self._engine = engine
        self._clock = clock

    # -- reading ---------------------------------------------------------------
    def living(self, name: str) -> Environment | None:
        """The living environment of that name, if any."""
        with self._engine.connect() as conn:
            row = conn.execute(select(envs_table).where(
                and_(envs_table.c.name == name, envs_table.c.state.in_(LIVING)))).first()
        return _row(row) if row else None

    def latest(self, name: str) -> Environment | None:
        """The newest environment of that name, living or ended."""
        with self._engine.connect() as conn:
            row = conn.execute(select(envs_table).where(envs_table.c.name == name)
                               .order_by(envs_table.c.id.desc()).limit(1)).first()
        return _row(row) if row else None

    def by_request(self, request_id: str) -> Environment | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(envs_table).where(envs_table.c.request_id == request_id)).first()
        return _row(row) if row else None

    def all(self, *, include_ended: bool = False) -> list[Environment]:
        query = select(envs_table).order_by(envs_table.c.id)
        if not include_ended:
            query = query.where(envs_table.c.state.in_(LIVING))
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def census(self) -> dict[str, tuple[int, datetime | None]]:
        """For each state any environment is in: how many are in it, and when the one there longest got there."""
        from sqlalchemy import func
        query = select(envs_table.c.state, func.count(), func.min(envs_table.c.updated_at)).group_by(
            envs_table.c.state)
        with self._engine.connect() as conn:
            return {state: (count, _utc(oldest)) for state, count, oldest in conn.execute(query)}

    def in_state(self, *states: str) -> list[Environment]:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(envs_table).where(envs_table.c.state.in_(states)))]

    def expired(self, now: datetime) -> list[Environment]:
        """Ready environments whose TTL has run out."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(envs_table).where(
                and_(envs_table.c.state == READY, envs_table.c.expires_at.is_not(None),
                     envs_table.c.expires_at <= now)))
            return [_row(r) for r in rows]

    def transitions(self, env: Environment) -> list[Transition]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(transitions_table).where(transitions_table.c.env_id == env.id)
                                .order_by(transitions_table.c.id))
            return [Transition(r.from_state, r.to_state, r.event_id, r.reason, _utc(r.at)) for r in rows]

    # -- writing ---------------------------------------------------------------
    def request(self, *, name: str, request_id: str, production: str, owner: str | None = None,
                data_version: str | None = None, ttl_seconds: int | None = None,
                correlation_id: str | None = None, reply_to: str | None = None) -> tuple[Environment, bool]:
        """Register a request; returns (environment, created). A living env of that name
        from another request is returned unchanged with created=False."""
        if (existing := self.by_request(request_id)) is not None:
            return existing, False
        if (living := self.living(name)) is not None:
            return living, False
        now = self._clock()
        with self._engine.begin() as conn:
            env_id = conn.execute(insert(envs_table).values(
                name=name, request_id=request_id, production=production, state=REQUESTED, owner=owner,
                data_version=data_version, ttl_seconds=ttl_seconds, correlation_id=correlation_id,
                reply_to=reply_to, created_at=now, updated_at=now)).inserted_primary_key[0]
            conn.execute(insert(transitions_table).values(env_id=env_id, from_state=None, to_state=REQUESTED,
                                                          event_id=request_id, at=now))
        return self.by_request(request_id), True

    def move(self, env: Environment, to_state: str, *, event_id: str | None = None, reason: str | None = None,
             endpoints: dict | None = None, expires_at: datetime | None = None) -> Environment:
        """Move `env` to `to_state`; a repeat of its current state is a no-op (replays are safe)."""
        current = self.get(env.id)
        if current.state == to_state:
            return current
        if to_state not in NEXT[current.state]:
            raise TransitionRefused(f"environment {env.name} is {current.state}; it cannot become {to_state}")
        now = self._clock()
        values = {"state": to_state, "updated_at": now}
        if reason is not None:
            values["reason"] = reason
        if endpoints is not None:
            values["endpoints"] = json.dumps(endpoints)
        if expires_at is not None:
            values["expires_at"] = expires_at
        with self._engine.begin() as conn:
            moved = conn.execute(update(envs_table).where(
                and_(envs_table.c.id == env.id, envs_table.c.state == current.state)).values(**values)).rowcount
            if moved:
                conn.execute(insert(transitions_table).values(env_id=env.id, from_state=current.state,
                                                              to_state=to_state, event_id=event_id, reason=reason,
                                                              at=now))
        if not moved:  # another worker moved it in between: re-read and decide again, once this transaction ended
            # (SQLite holds its write lock for the UPDATE that matched nothing until then)
            return self.move(env, to_state, event_id=event_id, reason=reason, endpoints=endpoints,
                             expires_at=expires_at)
        return self.get(env.id)

    def extend(self, env: Environment, expires_at: datetime, *, reason: str) -> Environment:
        """Move a living environment's end to `expires_at`, its state unchanged, with a line in its history."""
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(update(envs_table).where(envs_table.c.id == env.id).values(expires_at=expires_at,
                                                                                   updated_at=now))
            conn.execute(insert(transitions_table).values(env_id=env.id, from_state=env.state, to_state=env.state,
                                                          event_id=None, reason=reason, at=now))
        return self.get(env.id)

    def expiry_for(self, env: Environment) -> datetime | None:
        return self._clock() + timedelta(seconds=env.ttl_seconds) if env.ttl_seconds else None

    def get(self, env_id: int) -> Environment:
        with self._engine.connect() as conn:
            return _row(conn.execute(select(envs_table).where(envs_table.c.id == env_id)).one())
