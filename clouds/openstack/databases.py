"""An OpenStack environment's own databases: production's consistent dump, restored where the env's stack says,
anonymised before env.ready, and dropped with the environment.

    snapshot   each database the production names under `databases:` is dumped by its engine's own
               tool in one consistent snapshot (pg_dump in an exported snapshot, mariadb-dump in one
               transaction), from where production's stack outputs say, right after its images and
               volume snapshots are started, into the env's container doppel-<env> as
               snapshot/<snapshot id>/<name>.dump (Swift: any worker host can restore it).
    configure  before anything else, the dump is restored into the env's own database (where the
               env's stack outputs say: a new database, an old one of that name dropped first) and
               anonymised there with clone.anonymise, by the same code as a local clone's
               (clouds.databases.engines); then the dump is deleted from Swift. A personal column no rule
               covers fails closed: the copy is dropped, the environment fails, and says which column.
               databases.json in the container records which databases are done, for a retry.
    teardown   delete_stack drops each env database before Heat deletes the stack.

Never production's own: an env database that is production's (the same address, port and
database name) is refused, whatever the template's outputs say, and is never dropped.
Doppel reaches both as the account the entry names (a role production has, so every copy of
its volume has it too), its password read from `password_env`, never written anywhere.
"""
from __future__ import annotations

import json
import logging
import secrets as _secrets
import socket
import tempfile
from collections.abc import Mapping

from clouds.databases.engines import ENGINES, anonymise_or_drop
from clouds.databases.servers import DatabaseError, Server
from clouds.openstack import sdk
from clouds.openstack.resources import DATABASES_OBJECT, container_name
from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT, ComponentSnapshot, DriverError, Stack
from schemas.templates import TemplateError, render

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def dump_object(snapshot_id: str, name: str) -> str:
    """Where the snapshot's dump of database `name` is, in the env's container."""
    return f"snapshot/{snapshot_id}/{name}.dump"


def locate(database: Mapping, outputs: Mapping, name: str, production: str) -> tuple[Server, str]:
    """The server and database a `databases:` entry means for a stack with these outputs (of env or production
    `name`); DriverError when the outputs do not say."""
    given = {key: value for key, value in outputs.items() if value not in (None, "")}
    try:
        host = render(database["host"], outputs=given, secrets={}, env=name, production=production)
        found = render(database["database"], outputs=given, secrets={}, env=name, production=production)
    except TemplateError as exc:
        raise DriverError(f"cannot find database {database['name']} of {name}: {exc}; fix "
                          f"productions.{production}.databases or the template's outputs", env=name,
                          permanent=True) from None
    server = Server(engine=database["kind"], user=database["user"], host=str(host), port=database["port"],
                    password_env=database.get("password_env"))
    return server, str(found)


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)} | {host}
    except OSError:
        return {host}


def same_database(one: tuple[Server, str], other: tuple[Server, str]) -> bool:
    """Whether two (server, database) pairs are one database: the same name and port, at an address in common."""
    (a, a_db), (b, b_db) = one, other
    return a_db == b_db and a.port == b.port and bool(_addresses(a.host) & _addresses(b.host))


class DatabaseVerbs:
    """The databases of `OpenStackDriver` (clouds.openstack.driver), which gives them its productions, its
    connections, its Swift helpers (`_put_object`, `_read_object`) and production's parts."""

    def _production_outputs(self, conn, production: str, spec: Mapping, env: str) -> dict:
        """Production's stack outputs (where its databases are); none for a production named by its servers."""
        if not spec.get("stack"):
            return {}
        found = sdk.call(env, f"find production {production}'s stack",
                         lambda: conn.orchestration.find_stack(spec["stack"], ignore_missing=False))
        raw = sdk.call(env, f"read production {production}'s stack", lambda: conn.orchestration.get_stack(found.id))
        return {o["output_key"]: o.get("output_value") for o in (raw.outputs or [])}

    def _dump_databases(self, conn, production: str, spec: Mapping, env: str, snapshot_id: str,
                        tags: Mapping[str, str], make: bool = True) -> list[ComponentSnapshot]:
        """Dump each of production's databases into the env's container once per snapshot (only those there
        already when not `make`); their parts."""
        container = container_name(env)
        progress = self._read_object(conn, container, DATABASES_OBJECT) or {}
        done = progress.get("restored", {}) if progress.get("snapshot") == snapshot_id else {}
        outputs, parts = None, []
        for database in spec["databases"]:
            name = database["name"]
            where = dump_object(snapshot_id, name)
            size = None if name in done else self._object_size(conn, container, where)
            if size is None and name not in done:
                if not make:
                    continue
                outputs = self._production_outputs(conn, production, spec, env) if outputs is None else outputs
                source = locate(database, outputs, production, production)
                size = self._dump_one(conn, env, production, tags, container, where, source, name)
            parts.append(ComponentSnapshot("database", name, f"swift:{container}/{where}", size or 0))
        return parts

    def _dump_one(self, conn, env: str, production: str, tags: Mapping[str, str], container: str, where: str,
                  source: tuple[Server, str], name: str) -> int:
        server, database = source
        log.info("env %s: dumping production %s's database %s", env, production, name)
        with tempfile.NamedTemporaryFile(prefix="doppel-dump-") as file:  # removed on close, whatever happens
            try:
                ENGINES[server.engine].dump(server, database, file.write)
            except DatabaseError as exc:
                raise DriverError(f"cannot snapshot database {name} of production {production} for env {env}: "
                                  f"{exc}; it is retried", env=env) from None
            file.flush()
            size = file.tell()
            meta = {k: v for k, v in tags.items() if k in (TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT)}
            sdk.call(env, f"create container {container}",
                     lambda: conn.object_store.create_container(container, metadata=meta))
            sdk.call(env, f"store the dump of database {name}",
                     lambda: conn.object_store.upload_object(container, where, filename=file.name, metadata=meta))
        return size

    def _object_size(self, conn, container: str, name: str) -> int | None:
        try:
            return int(conn.object_store.get_object_metadata(name, container=container).content_length or 0)
        except Exception as exc:  # noqa: BLE001
            if sdk.status_code(exc) == 404:
                return None
            raise

    # --- configure -------------------------------------------------------------------------

    def _restore_databases(self, conn, env: str, current: Stack, spec: Mapping, policy: Mapping | None) -> dict:
        """Give the env its own copy of each database from the snapshot's dump, anonymised; rows rewritten per
        database. Done once per stack: databases.json in the container says which are done."""
        if not spec["databases"]:
            return {}
        production, snapshot_id = current.tags[TAG_PRODUCTION], current.tags.get(TAG_SNAPSHOT, "")
        container = container_name(env)
        progress = self._read_object(conn, container, DATABASES_OBJECT) or {}
        restored = progress.get("restored", {}) if progress.get("stack") == current.id else {}
        rules = (policy if policy is not None else spec["clone"]).get("anonymise") or []
        key = _secrets.token_bytes(32)  # this environment's pseudonyms; never stored, never shown
        production_outputs = None
        for database in spec["databases"]:
            name = database["name"]
            if name in restored:
                continue
            target = locate(database, current.outputs, env, production)
            if production_outputs is None:
                production_outputs = self._production_outputs(conn, production, spec, env)
            if same_database(target, locate(database, production_outputs, production, production)):
                raise DriverError(f"env {env}'s database {name} would be production's own ({target[1]} on "
                                  f"{target[0].where}); the env's stack must give it a database of its own (fix the "
                                  f"template's outputs or productions.{production}.databases)", env=env,
                                  permanent=True)
            self._load_dump(conn, env, container, dump_object(snapshot_id, name), target, name)
            try:
                changed = anonymise_or_drop(*target, [r for r in rules if r["database"] == name], key)
            except DatabaseError as exc:
                raise DriverError(f"cannot anonymise database {name} of env {env}, so its copy is dropped: {exc}",
                                  env=env, permanent=True) from None
            restored[name] = sum(changed.values())
            self._put_object(conn, env, current.tags, DATABASES_OBJECT,
                             json.dumps({"stack": current.id, "snapshot": snapshot_id, "restored": restored}).encode())
            conn.object_store.delete_object(dump_object(snapshot_id, name), container=container, ignore_missing=True)
            log.info("env %s: database %s restored and anonymised (%d values rewritten)", env, name, restored[name])
        return restored

    def _load_dump(self, conn, env: str, container: str, where: str, target: tuple[Server, str], name: str) -> None:
        server, database = target
        if self._object_size(conn, container, where) is None:
            raise DriverError(f"the snapshot's dump of database {name} is not in container {container}; request "
                              f"env {env} again for a new snapshot", env=env, permanent=True)
        try:
            loader = ENGINES[server.engine].Restoring(server, database)
        except DatabaseError as exc:
            raise DriverError(f"cannot make env {env}'s database {name}: {exc}", env=env) from None
        try:
            for chunk in conn.object_store.stream_object(where, container=container, chunk_size=CHUNK):
                loader.write(chunk)
        except Exception as exc:  # noqa: BLE001 - the half-made database goes, whatever stopped the stream
            loader.abort()
            raise sdk.transient(env, f"read the dump of database {name}", exc) from None
        try:
            loader.finish()
        except DatabaseError as exc:
            raise DriverError(f"cannot restore env {env}'s database {name}: {exc}", env=env) from None

    # --- teardown ---------------------------------------------------------------------------

    def _drop_databases(self, conn, env: str, stack: Stack) -> None:
        """Drop the env's own databases (where its stack's outputs say), never production's."""
        production = stack.tags.get(TAG_PRODUCTION, "")
        spec = self.productions.get(production)
        if spec is None or not spec["databases"]:
            return
        production_outputs = None
        for database in spec["databases"]:
            try:
                target = locate(database, stack.outputs, env, production)
            except DriverError:
                continue  # the stack never said where (it failed before): nothing was restored there
            if production_outputs is None:
                production_outputs = self._production_outputs(conn, production, spec, env)
            try:
                theirs = locate(database, production_outputs, production, production)
            except DriverError:
                theirs = None  # then configure never restored a copy either: it needs production's place first
            if theirs is None or same_database(target, theirs):
                log.warning("env %s: database %s is left as it is (it is production's own, or production's cannot "
                            "be found to tell)", env, database["name"])
                continue
            try:
                ENGINES[target[0].engine].drop(*target)
            except DatabaseError as exc:
                raise DriverError(f"cannot drop env {env}'s database {database['name']}: {exc}; the deletion is "
                                  "retried", env=env) from None
