"""APScheduler's job store table, scheduler_jobs, made here like every other table.

Until now the active scheduler's job store made it on start (APScheduler's own
`create(checkfirst=True)`), so it was the one table the migrations did not know; it is
declared as APScheduler declares it (apscheduler/jobstores/sqlalchemy.py), which then
finds it made. A database where a scheduler already ran has it: kept, rows and all.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "scheduler_jobs" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "scheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary, nullable=False))
    op.create_index("ix_scheduler_jobs_next_run_time", "scheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_table("scheduler_jobs")
