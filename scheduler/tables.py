"""The scheduler's own tables, beside APScheduler's job store, in Doppel's database.

Plain SQL on purpose: a worker, the CLI or the DR failover function writes here from
any process without APScheduler; only the active scheduler writes the job store.
Times are epoch seconds (Float): SQLite and PostgreSQL compare them alike, with no
naive/aware datetime surprises.
"""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, LargeBinary, MetaData, String, Table, Text, Unicode

metadata = MetaData()

JOBS_TABLE = "scheduler_jobs"
# APScheduler's SQLAlchemyJobStore table, as it declares it; the migrations make it (0004), the job store finds it.
jobs_table = Table(
    JOBS_TABLE, metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)

# One row per lease name: who may run the jobs, until when (see scheduler/lease.py).
lease_table = Table(
    "scheduler_lease", metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("generation", Integer, nullable=False),  # +1 on every change of holder: the compare-and-swap token
    Column("acquired_at", Float, nullable=False),
    Column("renewed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("released", Boolean, nullable=False, default=False),  # let go on a clean stop
)

# Environment TTLs asked for by functions; the active scheduler turns each into a date job.
expiries_table = Table(
    "scheduler_expiries", metadata,
    Column("env", String(64), primary_key=True),
    Column("at", Float, nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("fired_at", Float),  # set once the date job has emitted env.expired
)

# Every pause ever made, with when it was lifted: a fire is skipped when a pause
# covered its scheduled time, which is what keeps a resume from firing a missed run.
pauses_table = Table(
    "scheduler_pauses", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("selector_key", String(32), nullable=False, index=True),
    Column("selector", Text, nullable=False),  # canonical JSON
    Column("reason", Text, nullable=False),
    Column("paused_at", Float, nullable=False),
    Column("lifted_at", Float),
)

# Fires the broker did not confirm: kept here and published again by the active scheduler.
outbox_table = Table(
    "scheduler_outbox", metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the CloudEvent, JSON
    Column("correlation_id", String(255)),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)


