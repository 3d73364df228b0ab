"""Dropping a database an autovacuum worker is busy in. `DROP DATABASE ... WITH (FORCE)` ends the sessions of
Doppel's own role but not an autovacuum worker's (it runs as the bootstrap superuser), and right after a clone or
a restore has filled a table, one is often there: an environment's delete then failed with "must be a member of
the role whose process is being terminated"."""
from __future__ import annotations

import uuid

import pytest

from clouds.databases import postgresql
from tests.integration.databases.conftest import query
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgresql

# A table the launcher picks up after a few inserted rows, and whose vacuum then crawls: the worker stays.
SLOW_TO_VACUUM = ("autovacuum_vacuum_insert_threshold = 100, autovacuum_vacuum_insert_scale_factor = 0, "
                  "autovacuum_analyze_threshold = 100, autovacuum_analyze_scale_factor = 0, "
                  "autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1")


def sessions_in(server, database: str) -> int:
    """Sessions in `database` (Doppel's role sees that another role's session is there, not what it is)."""
    return query(server, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,))[0][0]


@pytest.mark.slow
def test_a_database_an_autovacuum_worker_is_busy_in_is_dropped(pg_server):
    """Slow on purpose: the autovacuum launcher visits a database once per autovacuum_naptime (1 min)."""
    # Given a database with a freshly filled table, and an autovacuum worker busy in it
    name = f"doppel_test_vacuumed_{uuid.uuid4().hex[:8]}"
    postgresql.create(pg_server, name)
    try:
        query(pg_server, name, f"CREATE TABLE filled (id bigint, payload text) WITH ({SLOW_TO_VACUUM})")
        query(pg_server, name, "INSERT INTO filled SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g")
        wait_for(lambda: sessions_in(pg_server, name), 240, "an autovacuum worker in the database", interval=0.5)
        assert query(pg_server, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                     "usename = current_user", (name,))[0][0] == 0  # the session there is not Doppel's

        # When Doppel drops it
        dropped = postgresql.drop(pg_server, name)

        # Then it is gone
        assert dropped and not postgresql.exists(pg_server, name)
    finally:
        if postgresql.exists(pg_server, name):
            postgresql.drop(pg_server, name, patience=60)
