"""Index environments.state and audit_events.recorded_at.

Every `doppel env list`, the expiry sweep and the status page select environments by
state, and `doppel events` (newest first, with a limit) orders the audit trail by
recorded_at: with no index both read the whole table, which grows with every
environment and every event ever handled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

INDEXES = (("ix_environments_state", "environments", "state"), ("ix_audit_events_recorded_at", "audit_events",
                                                                "recorded_at"))

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, table, column in INDEXES:
        if name not in {index["name"] for index in inspector.get_indexes(table)}:  # a table made by newer code
            op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _column in INDEXES:
        op.drop_index(name, table)
