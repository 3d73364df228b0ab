"""The logs an environment leaves behind: kept_logs (what is kept, where, until when) and
environment_secret_prints (salted prints of each environment's generated secrets, to mask them in its logs).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())  # a table made by newer code's create_all
    if "kept_logs" not in existing:
        op.create_table(
            "kept_logs",
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("env", sa.String(64), nullable=False, index=True),
            sa.Column("request_id", sa.String(255), nullable=False, index=True),
            sa.Column("production", sa.String(64)),
            sa.Column("store", sa.String(255), nullable=False),
            sa.Column("span_from", sa.DateTime(timezone=True)),
            sa.Column("span_to", sa.DateTime(timezone=True), nullable=False),
            sa.Column("size", sa.Integer, nullable=False),
            sa.Column("files", sa.Integer, nullable=False),
            sa.Column("kept_until", sa.DateTime(timezone=True), nullable=False),
            sa.Column("deleted_at", sa.DateTime(timezone=True)))
    if "environment_secret_prints" not in existing:
        op.create_table(
            "environment_secret_prints",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("request_id", sa.String(255), nullable=False, index=True),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("length", sa.Integer, nullable=False),
            sa.Column("print", sa.String(64), nullable=False))


def downgrade() -> None:
    op.drop_table("environment_secret_prints")
    op.drop_table("kept_logs")
