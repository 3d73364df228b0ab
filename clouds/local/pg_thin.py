"""A PostgreSQL production on this host cloned as a server instance of its own, on a copy-on-write data directory.

A postgresql component that names its `data_directory` (and whose server is on this
host) is cloned thin: the snapshot is a backup-mode, reflinked copy of the whole
cluster (clouds.local.pg_instances), kept stopped in `instances_dir` (default: the
state directory's `instances/`, which must be on production's XFS or Btrfs); the env
it was taken for takes it over with one rename, any other env gets a reflinked copy
of it. The env's copy is started on its own port of 127.0.0.1, recovers to a
consistent state, and opens closed: only Doppel, as the bootstrap superuser through a
socket directory of mode 0700, can reach it, and no role has a password. The
configure step anonymises it there, as it does any copy (failing closed); only then
does the env's role (the component's `user`) get a fresh password and TCP access. If
anonymisation fails the instance is stopped and removed. Teardown does the same.

Where reflinks are not possible (another filesystem, ext4) the component is copied
as every server database is (clouds.local.server_databases: a database on its
`clones` server), and the log says so once. Each method below looks at what exists
(an instance directory, or else a database) so a snapshot made either way is used
the way it was made.
"""
from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from clouds.databases.engines import ANONYMISERS, ENGINES
from clouds.databases.servers import DatabaseError, env_database, snapshot_database
from clouds.local import pg_instances
from clouds.local.copying import reflink
from clouds.local.server_databases import ServerDatabaseKind

log = logging.getLogger(__name__)


class InstanceKind(ServerDatabaseKind):
    """A postgresql component with a `data_directory`: each env a server instance of its own (thin)."""

    def __init__(self) -> None:
        super().__init__("postgresql", ENGINES["postgresql"], ANONYMISERS["postgresql"])
        self._thin: dict[tuple[str, str], bool] = {}

    # --- where things are -------------------------------------------------------------

    @staticmethod
    def _instances(component: Mapping) -> Path:
        return Path(component["instances_dir"])

    def _snapshot_instance(self, component: Mapping, snapshot_id: str) -> Path:
        return self._instances(component) / snapshot_database(snapshot_id, component["name"])

    def _env_instance(self, component: Mapping, env: str) -> Path:
        return self._instances(component) / env_database(env, component["name"])

    @staticmethod
    def _bin_dir(component: Mapping) -> Path:
        return pg_instances.bin_dir_of(Path(component["data_directory"]))

    def thin(self, component: Mapping) -> bool:
        """Whether production's data directory can be reflinked into the instances directory; tried once per pair
        on one file of production (read only), and said once in the log when it cannot."""
        key = (component["data_directory"], component["instances_dir"])
        if key not in self._thin:
            source = Path(component["data_directory"]) / "PG_VERSION"
            self._instances(component).mkdir(parents=True, exist_ok=True)
            probe = self._instances(component) / f".probe-{secrets.token_hex(4)}"
            src = os.open(source, os.O_RDONLY)
            try:
                dst = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    self._thin[key] = reflink(src, dst, str(source), str(probe))
                finally:
                    os.close(dst)
                    probe.unlink()
            finally:
                os.close(src)
            if not self._thin[key]:
                log.warning("PostgreSQL component %s: its data directory %s cannot be reflinked into %s, so each "
                            "env gets a database copied on the clone server (the dump/restore path), whose time "
                            "grows with production's size; put instances_dir on production's XFS or Btrfs for "
                            "instances of their own", component["name"], component["data_directory"],
                            component["instances_dir"])
        return self._thin[key]

    # --- snapshots --------------------------------------------------------------------

    def capture_database(self, component: Mapping, snapshot_id: str) -> tuple[str, int]:
        if not self.thin(component):
            return super().capture_database(component, snapshot_id)
        instance = self._snapshot_instance(component, snapshot_id)
        pg_instances.remove(instance, self._bin_dir(component))  # an attempt that died
        try:
            record = pg_instances.backup_copy(self.production_server(component), Path(component["data_directory"]),
                                              instance, label=f"doppel {snapshot_id}")
        except BaseException:
            pg_instances.remove(instance, self._bin_dir(component))
            raise
        log.info("copied PostgreSQL data directory %s into %s: %d files, %d reflinked", component["data_directory"],
                 instance, record["files"], record["thin"])
        return f"postgresql-instance://{instance}", record["bytes"]

    def snapshot_location(self, component: Mapping, snapshot_id: str) -> str:
        instance = self._snapshot_instance(component, snapshot_id)
        if instance.exists():
            return f"postgresql-instance://{instance}"
        return super().snapshot_location(component, snapshot_id)

    def drop_snapshot(self, component: Mapping, snapshot_id: str) -> None:
        instance = self._snapshot_instance(component, snapshot_id)
        if instance.exists():
            pg_instances.remove(instance, self._bin_dir(component))
        elif not self.thin(component):
            super().drop_snapshot(component, snapshot_id)

    # --- environments -----------------------------------------------------------------

    def build(self, component: Mapping, snapshot_id: str, env: str, take_over: bool) -> bool:
        source, target = self._snapshot_instance(component, snapshot_id), self._env_instance(component, env)
        if not source.exists() and not target.exists():
            return super().build(component, snapshot_id, env, take_over)  # a snapshot made on the clone server
        bin_dir = self._bin_dir(component)
        if target.exists() and not source.exists() and pg_instances.running(target):
            return take_over  # a retry after the take-over: the env has it already
        if not source.exists():
            raise DatabaseError(f"the snapshot's copy {source} is gone; take a new snapshot")
        pg_instances.remove(target, bin_dir)
        if take_over:
            os.rename(source, target)
        else:
            pg_instances.copy_instance(source, target)
        pg_instances.start(target, bin_dir)
        return take_over

    def give_back(self, component: Mapping, snapshot_id: str, env: str) -> None:
        source, target = self._snapshot_instance(component, snapshot_id), self._env_instance(component, env)
        if not target.exists():
            return super().give_back(component, snapshot_id, env)
        pg_instances.stop(target, self._bin_dir(component))
        if not source.exists():
            os.rename(target, source)

    def outputs(self, component: Mapping, env_root, env: str) -> dict:
        instance = self._env_instance(component, env)
        if not instance.exists():
            return super().outputs(component, env_root, env)
        port, database, user = pg_instances.record_of(instance)["port"], component["database"], component["user"]
        prefix = f"db_{component['name']}_"
        return {prefix + "host": "127.0.0.1", prefix + "port": port, prefix + "database": database,
                prefix + "user": user, prefix + "password_file": str(instance / pg_instances.PASSWORD),
                prefix + "url": f"postgresql://{user}@127.0.0.1:{port}/{database}"}

    def _admin_target(self, component: Mapping, env: str) -> dict | None:
        instance = self._env_instance(component, env)
        if not instance.exists():
            return None
        return {"name": component["name"], "kind": self.kind, "database": component["database"],
                "server": pg_instances.admin(pg_instances.record_of(instance)).to_dict()}

    def target(self, component: Mapping, env: str) -> dict:
        return self._admin_target(component, env) or super().target(component, env)

    def anonymise_database(self, component: Mapping, env: str, rules: list[Mapping], key: bytes) -> dict:
        """Anonymised on the env's own server, then opened to the env's role; fails closed: the instance is stopped
        and removed when the rules cannot make it safe."""
        instance = self._env_instance(component, env)
        if not instance.exists():
            return super().anonymise_database(component, env, rules, key)
        try:
            record = pg_instances.record_of(instance)
            changed = self.anonymiser.anonymise(pg_instances.admin(record), component["database"], rules, key)
            pg_instances.open_to(instance, component["user"], component["database"])
            return changed
        except BaseException:
            pg_instances.remove(instance, self._bin_dir(component))
            raise

    def drop_env(self, component: Mapping, env: str) -> None:
        instance = self._env_instance(component, env)
        if instance.exists():
            pg_instances.remove(instance, self._bin_dir(component))
        elif not self.thin(component):
            super().drop_env(component, env)


POSTGRESQL_INSTANCE = InstanceKind()
