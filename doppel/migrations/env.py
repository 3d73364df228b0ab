"""Alembic's entry point: runs the revisions in versions/ on the connection doppel.migrations hands in.

Run by `doppel db upgrade` (and on a brand-new database), never from an alembic.ini:
the connection comes in `config.attributes["connection"]`, already inside the
transaction (and, on PostgreSQL, the advisory lock) that doppel.migrations holds.
"""
from alembic import context

from doppel.migrations import all_metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=all_metadata(), render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
