"""Server databases (postgresql, mariadb) as components of a local production: each env gets a database of its own.

Where: a new database on the server the component's `clones` names (by default
production's own server), not a server instance of its own per environment. A
database is what a managed service (RDS, Trove) or an ops team's existing server
gives without root on the host, a data directory, a port or a service to look after;
an environment's database is dropped with one statement; and a second environment
from one snapshot is a copy made on the server (PostgreSQL: `CREATE DATABASE ...
TEMPLATE`, a file-level copy; MariaDB: mariadb-dump piped into mariadb). The cost:
environments share the clone server's CPU, memory and connection limit, and its
superuser sees them all (docs/configuration.md says so).

A snapshot copies production into `doppel_snap_<digest>_<name>` at one point in
time (clouds.databases.postgresql.clone, clouds.databases.mariadb.clone); the
environment it was taken for renames it to `doppel_<env>_<name>` (no copy; MariaDB,
which has no RENAME DATABASE, moves its tables), any other environment copies it. Deleting
the snapshot or the environment drops its database.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from clouds.databases.engines import ANONYMISERS, ENGINES
from clouds.databases.servers import DatabaseError, Server, env_database, snapshot_database

log = logging.getLogger(__name__)


class ServerDatabaseKind:
    """A database on a server: copied by the engine's own means, anonymised by SQL inside the clone."""
    holds_data = True
    on_server = True

    def __init__(self, kind: str, engine, anonymiser):
        self.kind, self.engine, self.anonymiser = kind, engine, anonymiser

    def own_files(self, component: Mapping) -> tuple[str, ...]:
        return ()  # nothing in the production's directory

    def production_server(self, component: Mapping) -> Server:
        return Server.of(self.kind, component)

    def clone_server(self, component: Mapping) -> Server:
        return Server.of(self.kind, component["clones"])

    def capture_database(self, component: Mapping, snapshot_id: str) -> tuple[str, int]:
        """Copy production's database into the snapshot's own; (where it is, bytes)."""
        target = self.clone_server(component)
        name = snapshot_database(snapshot_id, component["name"])
        size = self.engine.clone(self.production_server(component), component["database"], target, name)
        return f"{self.kind}://{target.user}@{target.where}/{name}", size

    def snapshot_target(self, component: Mapping, snapshot_id: str) -> dict:
        """Where a backup's copy of this database goes when a snapshot is made from a backup."""
        return {"name": component["name"], "kind": self.kind, "server": self.clone_server(component).to_dict(),
                "database": snapshot_database(snapshot_id, component["name"])}

    def snapshot_location(self, component: Mapping, snapshot_id: str) -> str:
        server = self.clone_server(component)
        return f"{self.kind}://{server.user}@{server.where}/{snapshot_database(snapshot_id, component['name'])}"

    def build(self, component: Mapping, snapshot_id: str, env: str, take_over: bool) -> bool:
        """Give `env` its database from the snapshot's: renamed when the snapshot was taken for it, else copied.
        True when it was renamed (so a failed build gives it back)."""
        server = self.clone_server(component)
        source, target = snapshot_database(snapshot_id, component["name"]), env_database(env, component["name"])
        if take_over:
            self.engine.resume_rename(server, source, target)  # a rename in steps (MariaDB) that died half-way
        if self.engine.exists(server, target) and not self.engine.exists(server, source):
            return take_over  # a retry after the rename: the env has it already
        if not self.engine.exists(server, source):
            raise DatabaseError(f"the snapshot's database {source} is not on {server.where}; take a new snapshot")
        self.engine.drop(server, target)
        if take_over:
            self.engine.rename(server, source, target)
        else:
            self.engine.create(server, target, template=source)
        return take_over

    def give_back(self, component: Mapping, snapshot_id: str, env: str) -> None:
        server = self.clone_server(component)
        source, target = snapshot_database(snapshot_id, component["name"]), env_database(env, component["name"])
        self.engine.resume_rename(server, target, source)
        if self.engine.exists(server, target) and not self.engine.exists(server, source):
            self.engine.rename(server, target, source)

    def outputs(self, component: Mapping, env_root, env: str) -> dict:
        server, database = self.clone_server(component), env_database(env, component["name"])
        prefix = f"db_{component['name']}_"
        scheme = "postgresql" if self.kind == "postgresql" else "mysql"
        return {prefix + "host": server.socket or server.host, prefix + "port": server.port,
                prefix + "database": database, prefix + "user": server.user,
                prefix + "url": f"{scheme}://{server.user}@{server.socket or server.host}:{server.port}/{database}"}

    def target(self, component: Mapping, env: str) -> dict:
        """Where `env`'s copy of this database is (for backups and restores): the server and the database."""
        return {"name": component["name"], "kind": self.kind, "server": self.clone_server(component).to_dict(),
                "database": env_database(env, component["name"])}

    def source(self, component: Mapping) -> dict:
        """Production's database, for a backup of production; restores go to the clone server."""
        return {"name": component["name"], "kind": self.kind, "server": self.production_server(component).to_dict(),
                "database": component["database"], "restore_server": self.clone_server(component).to_dict()}

    def anonymise_database(self, component: Mapping, env: str, rules: list[Mapping], key: bytes) -> dict:
        return self.anonymiser.anonymise(self.clone_server(component), env_database(env, component["name"]),
                                         rules, key)

    def drop_env(self, component: Mapping, env: str) -> None:
        self._drop(component, env_database(env, component["name"]))

    def drop_snapshot(self, component: Mapping, snapshot_id: str) -> None:
        self._drop(component, snapshot_database(snapshot_id, component["name"]))

    def _drop(self, component: Mapping, database: str) -> None:
        try:
            self.engine.drop(self.clone_server(component), database)
        except DatabaseError as exc:
            log.warning("could not drop database %s of component %s: %s", database, component["name"], exc)
            raise


POSTGRESQL = ServerDatabaseKind("postgresql", ENGINES["postgresql"], ANONYMISERS["postgresql"])
MARIADB = ServerDatabaseKind("mariadb", ENGINES["mariadb"], ANONYMISERS["mariadb"])
