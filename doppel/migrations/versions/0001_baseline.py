"""The baseline: the schema as Doppel made it with `create_all` before it had migrations.

A database made then has no alembic_version table and often not every table (each
was made by the part that first used it: the gateway's approvals, the embedded
bus's parked messages...). So each table here is made only when it is missing, and
`doppel db upgrade` brings such a database to this revision without touching its rows.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def tables() -> dict:
    """Each table's columns and constraints, and its indexes: (name, columns, unique, options)."""
    running = sa.text("status = 'running'")
    return {
        "environments": ([
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("request_id", sa.String(255), nullable=False),
            sa.Column("production", sa.String(64), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("owner", sa.String(128)),
            sa.Column("data_version", sa.String(128)),
            sa.Column("ttl_seconds", sa.Integer),
            sa.Column("expires_at", TZ),
            sa.Column("endpoints", sa.Text),
            sa.Column("reason", sa.Text),
            sa.Column("correlation_id", sa.String(255)),
            sa.Column("reply_to", sa.Text),
            sa.Column("created_at", TZ, nullable=False),
            sa.Column("updated_at", TZ, nullable=False),
            sa.UniqueConstraint("request_id"),
        ], [("ix_environments_name", ["name"], False, {})]),
        "environment_transitions": ([
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("env_id", sa.Integer, nullable=False),
            sa.Column("from_state", sa.String(16)),
            sa.Column("to_state", sa.String(16), nullable=False),
            sa.Column("event_id", sa.String(255)),
            sa.Column("reason", sa.Text),
            sa.Column("at", TZ, nullable=False),
        ], [("ix_environment_transitions_env_id", ["env_id"], False, {})]),
        "audit_events": ([
            sa.Column("source", sa.String(255), primary_key=True),
            sa.Column("id", sa.String(255), primary_key=True),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("correlation_id", sa.String(255), nullable=False),
            sa.Column("time", TZ, nullable=False),
            sa.Column("subject", sa.String(255)),
            sa.Column("data", sa.Text, nullable=False),
            sa.Column("recorded_at", sa.Float, nullable=False),
        ], [("ix_audit_events_correlation_id", ["correlation_id"], False, {}),
            ("ix_audit_events_type", ["type"], False, {})]),
        "dr_state": ([
            sa.Column("production", sa.String(64), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("since", TZ, nullable=False),
            sa.Column("holder", sa.String(255)),
            sa.Column("alarm_id", sa.String(255)),
            sa.Column("alarm_at", TZ),
            sa.Column("last_trigger_at", TZ),
            sa.Column("backup_id", sa.String(64)),
            sa.Column("dr_backup_id", sa.String(64)),
            sa.Column("previous_dns", sa.Text),
            sa.Column("dns_switched", sa.Boolean),
            sa.Column("detail", sa.Text),
        ], []),
        "dr_drills": ([
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("production", sa.String(64), nullable=False),
            sa.Column("backup_id", sa.String(64), nullable=False),
            sa.Column("at", TZ, nullable=False),
            sa.Column("verified", sa.Boolean, nullable=False),
            sa.Column("rpo_seconds", sa.Float),
            sa.Column("rto_seconds", sa.Float),
            sa.Column("detail", sa.Text),
        ], [("ix_dr_drills_production", ["production"], False, {})]),
        "backups": ([
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("env", sa.String(64), nullable=False),
            sa.Column("store", sa.String(255), nullable=False),
            sa.Column("created_at", TZ, nullable=False),
            sa.Column("size", sa.Integer, nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("reason", sa.String(32)),
            sa.Column("verified_at", TZ),
            sa.Column("verify_ok", sa.Boolean),
            sa.Column("verify_detail", sa.Text),
            sa.Column("deleted_at", TZ),
        ], [("ix_backups_env", ["env"], False, {})]),
        "idempotency_ledger": ([
            sa.Column("function", sa.String(64), primary_key=True),
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("owner", sa.String(64), nullable=False),
            sa.Column("lease_until", sa.Float, nullable=False),
            sa.Column("event_id", sa.String(255)),
            sa.Column("event_type", sa.String(64)),
            sa.Column("correlation_id", sa.String(255)),
            sa.Column("result", sa.Text),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("event", sa.Text),
            sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"),
            sa.Column("redriven_at", sa.Float),
        ], [("ix_idempotency_ledger_running", ["lease_until"], False,
             {"sqlite_where": running, "postgresql_where": running})]),
        "scheduler_lease": ([
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("holder", sa.String(255), nullable=False),
            sa.Column("generation", sa.Integer, nullable=False),
            sa.Column("acquired_at", sa.Float, nullable=False),
            sa.Column("renewed_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
            sa.Column("released", sa.Boolean, nullable=False),
        ], []),
        "scheduler_expiries": ([
            sa.Column("env", sa.String(64), primary_key=True),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("requested_at", sa.Float, nullable=False),
            sa.Column("fired_at", sa.Float),
        ], []),
        "scheduler_pauses": ([
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("selector_key", sa.String(32), nullable=False),
            sa.Column("selector", sa.Text, nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("paused_at", sa.Float, nullable=False),
            sa.Column("lifted_at", sa.Float),
        ], [("ix_scheduler_pauses_selector_key", ["selector_key"], False, {})]),
        "scheduler_outbox": ([
            sa.Column("event_id", sa.String(255), primary_key=True),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("correlation_id", sa.String(255)),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text),
        ], []),
        "chat_approvals": ([
            sa.Column("code", sa.String(16), primary_key=True),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("production", sa.String(64), nullable=False),
            sa.Column("platform", sa.String(16), nullable=False),
            sa.Column("requested_by", sa.String(128), nullable=False),
            sa.Column("requested_at", TZ, nullable=False),
            sa.Column("expires_at", TZ, nullable=False),
            sa.Column("approved_by", sa.String(128)),
            sa.Column("approved_at", TZ),
        ], []),
        "embedded_parked": ([
            sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("queue", sa.String(255), nullable=False),
            sa.Column("message_id", sa.String(255)),
            sa.Column("routing_key", sa.String(255), nullable=False),
            sa.Column("headers", sa.Text, nullable=False),
            sa.Column("correlation_id", sa.String(255)),
            sa.Column("timestamp", sa.Integer),
            sa.Column("body", sa.LargeBinary, nullable=False),
        ], [("ix_embedded_parked_queue", ["queue"], False, {})]),
    }


# Columns the ledger gained before migrations, which an old ledger table lacks (the Ledger used to add them).
LEDGER_ADDED = {"event": sa.Text, "takeovers": sa.Integer, "redriven_at": sa.Float}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    for name, (columns, indexes) in tables().items():
        if name in present:
            continue  # made before migrations, by the part that used it first: kept as it is, rows and all
        op.create_table(name, *columns)
        for index, on, unique, options in indexes:
            op.create_index(index, name, on, unique=unique, **options)
    if "idempotency_ledger" in present:
        _bring_old_ledger_up(inspector)


def _bring_old_ledger_up(inspector) -> None:
    """A ledger table made before its last columns and its running index: add them, as the Ledger did then."""
    has = {column["name"] for column in inspector.get_columns("idempotency_ledger")}
    for name, kind in LEDGER_ADDED.items():
        if name not in has:
            default = {"server_default": "0", "nullable": False} if name == "takeovers" else {}
            op.add_column("idempotency_ledger", sa.Column(name, kind, **default))
    _columns, indexes = tables()["idempotency_ledger"]
    if not any(index["name"] == indexes[0][0] for index in inspector.get_indexes("idempotency_ledger")):
        index, on, unique, options = indexes[0]
        op.create_index(index, "idempotency_ledger", on, unique=unique, **options)


def downgrade() -> None:
    for name in reversed(list(tables())):
        op.drop_table(name)
