"""An environment's own databases on a cloud, for every driver: production's consistent dump kept in the cloud's
object store, restored where the env's stack says, anonymised before env.ready, and dropped with the environment.

    snapshot   each database the production names under `databases:` is dumped by its engine's own
               tool in one consistent snapshot (pg_dump in an exported snapshot, mariadb-dump in one
               transaction), from where production's stack outputs say, into the env's place in the
               object store as snapshot/<snapshot id>/<name>.dump (any worker host can restore it).
    configure  the dump is restored into the env's own database (where the env's stack outputs say: a
               new database, an old one of that name dropped first) and anonymised there with
               clone.anonymise, by the same code as a local clone's (clouds.databases.engines); then the
               dump is deleted. A personal column no rule covers fails closed: the copy is dropped, the
               environment fails, and says which column. databases.json beside the dumps records which
               databases are done, for a retry.
    teardown   each env database is dropped before the stack is deleted.

Never production's own: an env database that is production's (the same address, port and database name)
is refused, whatever the template's outputs say, and is never dropped. Doppel reaches both as the account
the entry names, its password read from `password_env`, never written anywhere.

The drivers differ only in where the dumps are kept: a `DumpPlace` (a Swift container doppel-<env> on
OpenStack, the prefix doppel-<env>/ of an S3 bucket on AWS) and how production's outputs are read.
"""
from __future__ import annotations

import logging
import secrets as _secrets
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from clouds.databases import accounts
from clouds.databases.engines import ENGINES, anonymise_or_drop
from clouds.databases.servers import DatabaseError, Server
from core.cloud import ComponentSnapshot, DriverError
from schemas.openstack import DEFAULT_PORTS
from schemas.templates import TemplateError, render

log = logging.getLogger(__name__)
PROGRESS = "databases.json"  # which databases configure restored and anonymised, for a retry


class DumpPlace(Protocol):
    """Where one environment's dumps are kept; each call raises DriverError when the store fails."""

    def size(self, name: str) -> int | None:
        """The object's size, None when it is not there."""

    def upload(self, name: str, path: str) -> None: ...

    def read_json(self, name: str) -> dict | None: ...

    def write_json(self, name: str, value: Mapping) -> None: ...

    def stream(self, name: str) -> Iterator[bytes]: ...

    def delete(self, name: str) -> None:
        """Delete the object; a missing one is no error."""

    def location(self, name: str) -> str:
        """How a snapshot's part names it, e.g. swift:doppel-<env>/snapshot/…"""


def dump_object(snapshot_id: str, name: str) -> str:
    """Where the snapshot's dump of database `name` is, in the env's place."""
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


def owner_of(database: Mapping, outputs: Mapping, name: str, production: str) -> str | None:
    """The login role the entry's `owner.user` names for a stack with these outputs; None without `owner:`."""
    if not database.get("owner"):
        return None
    given = {key: value for key, value in outputs.items() if value not in (None, "")}
    try:
        return str(render(database["owner"]["user"], outputs=given, secrets={}, env=name, production=production))
    except TemplateError as exc:
        raise DriverError(f"cannot name the account of database {database['name']} of {name}: {exc}; fix "
                          f"productions.{production}.databases or the template's outputs", env=name,
                          permanent=True) from None


def _give_account(database: Mapping, target: tuple[Server, str], user: str, secrets: Mapping[str, str],
                  theirs: str | None, env: str) -> None:
    """The env's own login on its database, with the password generated for it (never production's)."""
    secret = database["owner"]["password"].strip("{}").removeprefix("secrets.")
    if user == theirs:
        raise DriverError(f"env {env}'s account {user} on database {database['name']} would be production's own; "
                          "the env's stack must name an account of its own", env=env, permanent=True)
    if not secrets.get(secret):
        raise DriverError(f"env {env} has no generated secret {secret} for its account on database "
                          f"{database['name']}; it is made with the stack, so request the env again", env=env,
                          permanent=True)
    try:
        accounts.give(*target, user, secrets[secret])
    except DatabaseError as exc:
        raise DriverError(f"{exc}", env=env, permanent=True) from None


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)} | {host}
    except OSError:
        return {host}


def same_database(one: tuple[Server, str], other: tuple[Server, str]) -> bool:
    """Whether two (server, database) pairs are one database: the same name and port, at an address in common."""
    (a, a_db), (b, b_db) = one, other
    return a_db == b_db and a.port == b.port and bool(_addresses(a.host) & _addresses(b.host))


def backup_entry(database: Mapping, outputs: Mapping, name: str, production: str) -> dict:
    """A BackupSource.servers entry: the database at the address the stack's outputs give, as Doppel's backup
    user (its password in the variable `password_env` names, never here); the backup dumps it beside the
    stack's description, in the same layout whichever cloud it is on."""
    server, found = locate(database, outputs, name, production)
    entry = {"name": database["name"], "kind": database["kind"], "server": server.to_dict(), "database": found}
    if database.get("verify_on"):
        entry["restore_server"] = {"engine": database["kind"], "port": DEFAULT_PORTS[database["kind"]],
                                   **database["verify_on"]}
    return entry


def _owner_or_none(database: Mapping, outputs: Mapping, name: str, production: str) -> str | None:
    try:
        return owner_of(database, outputs, name, production)
    except DriverError:
        return None


# --- snapshot --------------------------------------------------------------------------------

def dump_databases(place: DumpPlace, databases: list[Mapping], snapshot_id: str, *, env: str, production: str,
                   production_outputs: Callable[[], Mapping], make: bool = True) -> list[ComponentSnapshot]:
    """Dump each of production's databases into the env's place once per snapshot (only those there already
    when not `make`); their parts."""
    progress = place.read_json(PROGRESS) or {}
    done = progress.get("restored", {}) if progress.get("snapshot") == snapshot_id else {}
    outputs, parts = None, []
    for database in databases:
        name = database["name"]
        where = dump_object(snapshot_id, name)
        size = None if name in done else place.size(where)
        if size is None and name not in done:
            if not make:
                continue
            outputs = production_outputs() if outputs is None else outputs
            size = _dump_one(place, env, production, where, locate(database, outputs, production, production), name)
        parts.append(ComponentSnapshot("database", name, place.location(where), size or 0))
    return parts


def _dump_one(place: DumpPlace, env: str, production: str, where: str, source: tuple[Server, str],
              name: str) -> int:
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
        place.upload(where, file.name)
    return size


# --- configure -------------------------------------------------------------------------------

def restore_databases(place: DumpPlace, databases: list[Mapping], rules: list[Mapping], *, env: str,
                      production: str, snapshot_id: str, stack_id: str, outputs: Mapping,
                      production_outputs: Callable[[], Mapping], secrets: Mapping[str, str] | None = None) -> dict:
    """Give the env its own copy of each database from the snapshot's dump, anonymised, and (with `owner:`) its
    own account on it, with the password `secrets` holds for it; rows rewritten per database. Done once per
    stack: databases.json in the env's place says which are done."""
    if not databases:
        return {}
    progress = place.read_json(PROGRESS) or {}
    restored = progress.get("restored", {}) if progress.get("stack") == stack_id else {}
    key = _secrets.token_bytes(32)  # this environment's pseudonyms; never stored, never shown
    theirs = None
    for database in databases:
        name = database["name"]
        if name in restored:
            continue
        target = locate(database, outputs, env, production)
        theirs = production_outputs() if theirs is None else theirs
        if same_database(target, locate(database, theirs, production, production)):
            raise DriverError(f"env {env}'s database {name} would be production's own ({target[1]} on "
                              f"{target[0].where}); the env's stack must give it a database of its own (fix the "
                              f"template's outputs or productions.{production}.databases)", env=env, permanent=True)
        _load_dump(place, env, dump_object(snapshot_id, name), target, name)
        try:
            changed = anonymise_or_drop(*target, [r for r in rules if r["database"] == name], key)
        except DatabaseError as exc:
            raise DriverError(f"cannot anonymise database {name} of env {env}, so its copy is dropped: {exc}",
                              env=env, permanent=True) from None
        user = owner_of(database, outputs, env, production)
        if user is not None:
            _give_account(database, target, user, secrets or {}, owner_of(database, theirs, production, production),
                          env)
        restored[name] = sum(changed.values())
        place.write_json(PROGRESS, {"stack": stack_id, "snapshot": snapshot_id, "restored": restored})
        place.delete(dump_object(snapshot_id, name))
        log.info("env %s: database %s restored and anonymised (%d values rewritten)", env, name, restored[name])
    return restored


def _load_dump(place: DumpPlace, env: str, where: str, target: tuple[Server, str], name: str) -> None:
    server, database = target
    if place.size(where) is None:
        raise DriverError(f"the snapshot's dump of database {name} is not in {place.location('')}; request "
                          f"env {env} again for a new snapshot", env=env, permanent=True)
    try:
        loader = ENGINES[server.engine].Restoring(server, database)
    except DatabaseError as exc:
        raise DriverError(f"cannot make env {env}'s database {name}: {exc}", env=env) from None
    try:
        for chunk in place.stream(where):
            loader.write(chunk)
    except Exception as exc:  # noqa: BLE001 - the half-made database goes, whatever stopped the stream
        loader.abort()
        if isinstance(exc, DriverError):
            raise
        raise DriverError(f"could not read the dump of database {name} for env {env}: {exc.__class__.__name__}: "
                          f"{str(exc)[:300]}; it is retried", env=env) from None
    try:
        loader.finish()
    except DatabaseError as exc:
        raise DriverError(f"cannot restore env {env}'s database {name}: {exc}", env=env) from None


# --- teardown --------------------------------------------------------------------------------

def drop_databases(databases: list[Mapping], *, env: str, production: str, outputs: Mapping,
                   production_outputs: Callable[[], Mapping], keep_when_unreadable: bool = False) -> None:
    """Drop the env's own databases (where its stack's outputs say), never production's.

    Production's outputs say where production's own are; when they cannot be read, the DriverError goes up (a
    teardown is retried), or with `keep_when_unreadable` (a DR target, whose production may be the part that is
    down) the copies are left, with a warning."""
    theirs_outputs = None
    for database in databases:
        try:
            target = locate(database, outputs, env, production)
        except DriverError:
            continue  # the stack never said where (it failed before): nothing was restored there
        if theirs_outputs is None:
            try:
                theirs_outputs = production_outputs()
            except DriverError:
                if not keep_when_unreadable:
                    raise
                theirs_outputs = {}  # then production's place is unknown, and nothing is dropped below
        try:
            theirs = locate(database, theirs_outputs, production, production)
        except DriverError:
            theirs = None  # then configure never restored a copy either: it needs production's place first
        if theirs is None or same_database(target, theirs):
            log.warning("env %s: database %s is left as it is (it is production's own, or production's cannot "
                        "be found to tell)", env, database["name"])
            continue
        try:
            ENGINES[target[0].engine].drop(*target)
            user = _owner_or_none(database, outputs, env, production)
            if user is not None and user != _owner_or_none(database, theirs_outputs, production, production):
                accounts.remove(target[0], user)  # never production's account
        except DatabaseError as exc:
            raise DriverError(f"cannot drop env {env}'s database {database['name']}: {exc}; the deletion is "
                              "retried", env=env) from None
