"""Risky chat commands wait for a second operator: `dr failover` and `dr failback` are asked for, then approved
with `/doppel approve CODE` by someone else within `gateway.approvals.timeout`.

The asks live in the shared database, so any gateway replica can take the approval; an approval is one
conditional UPDATE (not yet approved, not expired, not by the asker), so two approvals of one code cannot both
win.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Column, DateTime, MetaData, String, Table, and_, insert, select, update

metadata = MetaData()
approvals_table = Table(
    "chat_approvals", metadata,
    Column("code", String(16), primary_key=True),
    Column("action", String(32), nullable=False),  # failover | failback
    Column("production", String(64), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("approved_by", String(128)),
    Column("approved_at", DateTime(timezone=True)),
)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


@dataclass(frozen=True)
class Ask:
    code: str
    action: str
    production: str
    platform: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    approved_by: str | None = None


class ApprovalRefused(ValueError):
    """The approval cannot be given; the message says why, in words for chat."""


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


class Approvals:
    def __init__(self, engine, timeout_s: float, clock=lambda: datetime.now(timezone.utc)):
        self._engine, self.timeout_s, self.clock = engine, timeout_s, clock

    def ask(self, action: str, production: str, user: str, platform: str) -> Ask:
        """Record that `user` asks for `action` on `production`; the Ask's code is what a second operator types."""
        now = self.clock()
        ask = Ask("".join(secrets.choice(_ALPHABET) for _ in range(6)), action, production, platform, user, now,
                  now + timedelta(seconds=self.timeout_s))
        with self._engine.begin() as conn:
            conn.execute(insert(approvals_table).values(
                code=ask.code, action=action, production=production, platform=platform, requested_by=user,
                requested_at=now, expires_at=ask.expires_at))
        return ask

    def approve(self, code: str, user: str, *, again: bool = True) -> Ask:
        """The Ask, approved by `user`; ApprovalRefused when the code is unknown, expired, already approved, or
        `user` is the one who asked."""
        code = code.strip().upper()
        ask = self.get(code)
        if ask is None:
            raise ApprovalRefused(f"No request waits for approval under {code!r}.")
        if ask.approved_by:
            raise ApprovalRefused(f"{code} was already approved by {ask.approved_by}.")
        if ask.requested_by == user:
            raise ApprovalRefused(f"You asked for {code} yourself; a second operator must approve it.")
        now = self.clock()
        if now >= ask.expires_at:
            raise ApprovalRefused(f"{code} expired at {ask.expires_at:%H:%M UTC}, {self.timeout_s / 60:g} min after "
                                  f"it was asked; ask again with `/doppel dr {ask.action} {ask.production}`.")
        with self._engine.begin() as conn:
            won = conn.execute(update(approvals_table).where(and_(
                approvals_table.c.code == code, approvals_table.c.approved_by.is_(None),
                approvals_table.c.expires_at > now)).values(approved_by=user, approved_at=now)).rowcount
        if not won:  # another approval, or the clock, came in between: say which
            if again:
                return self.approve(code, user, again=False)
            raise ApprovalRefused(f"{code} changed while it was being approved; look again with /doppel dr status.")
        return self.get(code)

    def get(self, code: str) -> Ask | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(approvals_table).where(approvals_table.c.code == code)).first()
        if row is None:
            return None
        return Ask(row.code, row.action, row.production, row.platform, row.requested_by, _utc(row.requested_at),
                   _utc(row.expires_at), row.approved_by)
