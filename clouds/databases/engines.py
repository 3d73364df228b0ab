"""Each server database kind's engine (copies, dumps, restores, drops) and its anonymiser, for every driver.

The local driver (clouds.local.server_databases) and the openstack driver
(clouds.openstack.databases) reach PostgreSQL and MariaDB through these two
registries, so a clone is copied, restored, anonymised and failed closed by one
code path whichever cloud the environment lives on.
"""
from __future__ import annotations

from collections.abc import Mapping

from clouds.databases import maria_anonymise, mariadb, pg_anonymise, postgresql
from clouds.databases.servers import DatabaseError, Server, drop_quietly

ENGINES = {"postgresql": postgresql, "mariadb": mariadb}
ANONYMISERS = {"postgresql": pg_anonymise, "mariadb": maria_anonymise}


def anonymise_or_drop(server: Server, database: str, rules: list[Mapping], key: bytes) -> dict[str, int]:
    """Anonymise a clone's `database` with `rules` (rows rewritten per column), failing closed: when the rules
    cannot make it safe (a personal column no rule covers, a rule that breaks a key, a production value left),
    the copy is dropped and the DatabaseError, naming table and column, is raised."""
    try:
        return ANONYMISERS[server.engine].anonymise(server, database, rules, key)
    except DatabaseError:
        drop_quietly(ENGINES[server.engine].drop, server, database)
        raise
