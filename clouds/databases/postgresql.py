"""PostgreSQL: a consistent copy of a live database into a new one, databases made and dropped, dumps streamed.

A copy is one point in time while production keeps taking writes, and locks no
more than pg_dump does. One transaction on production (REPEATABLE READ, read only)
exports its snapshot and takes ACCESS SHARE locks on the tables, as pg_dump's
leader does; pg_dump then reads the schema in that snapshot; the clone database
gets the schema's first half (tables, types, functions: pg_restore's pre-data);
every table's rows then flow by `COPY ... (FORMAT binary)` from production to the
clone over a few connections that all join the same snapshot, largest tables
first; sequences get their values as of the snapshot; last comes the second half
(indexes, constraints, triggers: post-data), with parallel jobs. Nothing is
written to disk but the schema (a few kilobytes), nothing is compressed, and no
row passes through a file, which is why this is faster than pg_dump | pg_restore.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
from psycopg import sql

from clouds.databases.servers import DatabaseError, DumpLoader, Server, drop_quietly, stderr_tail

log = logging.getLogger(__name__)

_TABLES = """
    SELECT n.nspname, c.relname, pg_relation_size(c.oid) AS size,
           array(SELECT quote_ident(a.attname) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS columns
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
     ORDER BY size DESC, n.nspname, c.relname"""
_SEQUENCES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"""


def connect(server: Server, database: str, **kwargs) -> psycopg.Connection:
    """A connection to `database`; DatabaseError (no password in it) when it cannot be made."""
    params = {"dbname": database, "user": server.user, "password": server.password(),
              "host": server.socket or server.host, "port": server.port or 5432, "connect_timeout": 10,
              "application_name": "doppel"}
    try:
        return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, **kwargs)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL database {database} on {server.where} as "
                            f"{server.user}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _admin(server: Server, statement: sql.Composable) -> None:
    with connect(server, "postgres", autocommit=True) as conn:
        conn.execute(statement)


def exists(server: Server, database: str) -> bool:
    with connect(server, "postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def create(server: Server, database: str, template: str = "template0") -> None:
    _admin(server, sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(database),
                                                                   sql.Identifier(template)))


def drop(server: Server, database: str, patience: float = 300.0) -> bool:
    """Drop `database` if it is there (its sessions ended first); whether it was.

    FORCE ends the sessions of Doppel's own role, but not an autovacuum worker's: those run as the bootstrap
    superuser, and one is often busy with a table a clone or a restore has just filled. It gives way to a lock
    request (PostgreSQL cancels an autovacuum that blocks one), so Doppel asks for its tables' locks and drops
    while it holds them; a worker that came back meanwhile is waited out, for `patience` seconds at most.
    """
    drop_statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
    deadline = time.monotonic() + patience
    with connect(server, "postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            return False
        while True:
            try:
                conn.execute(drop_statement)
                break
            except psycopg.errors.InsufficientPrivilege as exc:
                if time.monotonic() > deadline:
                    raise DatabaseError(f"cannot drop PostgreSQL database {database} on {server.where}: a session "
                                        f"Doppel may not end stayed for {patience:.0f} s ({_first_line(exc)}); "
                                        "drop it as a superuser once it is gone") from None
            with _holding_its_tables(server, database):
                try:
                    conn.execute(drop_statement)  # ends the session holding the locks too: it is Doppel's
                    break
                except psycopg.errors.InsufficientPrivilege:
                    time.sleep(0.5)
    log.info("dropped PostgreSQL database %s on %s", database, server.where)
    return True


@contextmanager
def _holding_its_tables(server: Server, database: str):
    """A session of `database` holding ACCESS EXCLUSIVE locks on its tables (an autovacuum in the way is cancelled
    by the server within deadlock_timeout); nothing held when the database could not be reached."""
    try:
        holder = connect(server, database)
    except DatabaseError:
        yield
        return
    try:
        holder.execute("SET lock_timeout = '30s'")
        tables = [row[0] for row in holder.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND pg_has_role(c.relowner, 'USAGE')")]
        if tables:
            holder.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    except psycopg.Error:
        pass  # not every lock: the drop is tried all the same, and again after a pause
    try:
        yield
    finally:
        try:
            holder.close()
        except psycopg.Error:
            pass  # ended by the drop


def rename(server: Server, old: str, new: str) -> None:
    _admin(server, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))


def resume_rename(server: Server, old: str, new: str) -> None:
    """Nothing to finish: ALTER DATABASE ... RENAME is one statement."""


def size(server: Server, database: str) -> int:
    with connect(server, database, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def _tool(server: Server, name: str, database: str, *args: str) -> list[str]:
    """A command line for pg_dump/pg_restore/psql against `database` (the password goes in the environment)."""
    return [name, "--host", server.socket or server.host, "--port", str(server.port or 5432),
            "--username", server.user, "--no-password", *args, "--dbname", database]


def _run(server: Server, command: list[str], what: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(command, input=stdin, capture_output=True, env=server.tool_env())
    if done.returncode != 0:
        raise DatabaseError(f"{what}: {command[0]} failed: {stderr_tail(done.stderr)}")
    return done.stdout


class SnapshotTransaction:
    """A read-only REPEATABLE READ transaction on production whose snapshot other sessions and pg_dump join."""

    def __init__(self, server: Server, database: str, lock: bool = True):
        self.server, self.database = server, database
        self.conn = connect(server, database)
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        self.snapshot = self.conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        self.tables = self.conn.execute(_TABLES).fetchall()
        if lock:
            for schema, table, _size, _columns in self.tables:  # what pg_dump's leader takes, no more
                self.conn.execute(sql.SQL("LOCK TABLE {}.{} IN ACCESS SHARE MODE").format(
                    sql.Identifier(schema), sql.Identifier(table)))

    def join(self) -> psycopg.Connection:
        """Another session on production that sees exactly this snapshot."""
        conn = connect(self.server, self.database)
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot)))
        return conn

    def counts(self) -> dict[str, int]:
        """Rows per table (schema.table) as of the snapshot."""
        return {f"{schema}.{table}": self.conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]
            for schema, table, _size, _columns in self.tables}

    def close(self) -> None:
        self.conn.close()


def clone(source: Server, source_db: str, target: Server, target_db: str, *, workers: int = 2) -> int:
    """Copy `source_db` as of one moment into a new database `target_db`; its size in bytes.

    A database of that name left by an attempt that died is dropped first; one that
    fails half-way is dropped before the error is raised.
    """
    drop(target, target_db)
    snapshot = SnapshotTransaction(source, source_db)
    try:
        schema = _run(source, _tool(source, "pg_dump", source_db, "--schema-only", "--format=custom",
                                    f"--snapshot={snapshot.snapshot}"), f"reading the schema of {source_db}")
        create(target, target_db)
        with tempfile.NamedTemporaryFile(prefix="doppel-schema-", suffix=".pgdump") as handle:
            handle.write(schema)
            handle.flush()
            restore_args = ("--no-owner", "--no-acl", "--exit-on-error")
            _run(target, _tool(target, "pg_restore", target_db, "--section=pre-data", *restore_args, handle.name),
                 f"making the tables of {target_db}")
            _copy_rows(snapshot, target, target_db, workers)
            _copy_sequences(snapshot, target, target_db)
            _run(target, _tool(target, "pg_restore", target_db, "--section=post-data", f"--jobs={workers}",
                               *restore_args, handle.name), f"making the indexes and constraints of {target_db}")
        snapshot.conn.commit()
    except BaseException as exc:
        drop_quietly(drop, target, target_db)
        if isinstance(exc, psycopg.Error):
            raise DatabaseError(f"copying PostgreSQL database {source_db} into {target_db}: "
                                f"{_first_line(exc)}") from None
        raise
    finally:
        snapshot.close()
    return size(target, target_db)


def _copy_rows(snapshot: SnapshotTransaction, target: Server, target_db: str, workers: int) -> None:
    """Every table's rows, from the snapshot into the clone, over `workers` pairs of connections."""
    queue = list(snapshot.tables)
    if not queue:
        return

    def worker() -> None:
        source_conn, target_conn = snapshot.join(), connect(target, target_db)
        try:
            while queue:
                try:
                    schema, table, _size, columns = queue.pop(0)
                except IndexError:
                    return
                name = sql.SQL("{}.{} ({})").format(sql.Identifier(schema), sql.Identifier(table),
                                                    sql.SQL(", ").join(sql.SQL(c) for c in columns))
                with source_conn.cursor().copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(name)) as out, \
                        target_conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(name)) as into:
                    for block in out:
                        into.write(block)
            target_conn.commit()
        finally:
            source_conn.close()
            target_conn.close()

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(queue))), thread_name_prefix="doppel-pg") as pool:
        for job in [pool.submit(worker) for _ in range(max(1, min(workers, len(queue))))]:
            job.result()


def _copy_sequences(snapshot: SnapshotTransaction, target: Server, target_db: str) -> None:
    sequences = snapshot.conn.execute(_SEQUENCES).fetchall()
    if not sequences:
        return
    with connect(target, target_db) as conn:
        for schema, name in sequences:
            qualified = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            last, called = snapshot.conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                qualified)).fetchone()
            conn.execute("SELECT setval(%s::regclass, %s, %s)", (qualified.as_string(conn), last, called))


# --- dumps, for backups -------------------------------------------------------------

def dump(server: Server, database: str, sink: Callable[[bytes], None], chunk: int = 1 << 20) -> dict[str, int]:
    """Stream `database` in pg_dump's custom format (uncompressed: the archive compresses) into `sink`.

    Returns the rows per table, counted in the same snapshot the dump reads, so a
    restore can be checked against them.
    """
    snapshot = SnapshotTransaction(server, database, lock=False)
    try:
        counts = snapshot.counts()
        command = _tool(server, "pg_dump", database, "--format=custom", "--compress=0",
                        f"--snapshot={snapshot.snapshot}")
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server.tool_env()) as proc:
            while block := proc.stdout.read(chunk):
                sink(block)
            stderr = proc.stderr.read()
        if proc.returncode != 0:
            raise DatabaseError(f"dumping PostgreSQL database {database}: pg_dump failed: {stderr_tail(stderr)}")
        snapshot.conn.commit()
        return counts
    finally:
        snapshot.close()


class Restoring(DumpLoader):
    """A pg_restore into a new database, fed the dump's bytes as they come (no file in between)."""

    def __init__(self, server: Server, database: str):
        drop(server, database)
        create(server, database)
        super().__init__(server, database, _tool(server, "pg_restore", database, "--no-owner", "--no-acl",
                                                 "--exit-on-error"), drop)

    def finish(self) -> None:
        """Wait for pg_restore; DatabaseError naming the database when it failed (the database is dropped)."""
        code, message = self._ended()
        if code != 0:
            raise self._failed(f"restoring PostgreSQL database {self.database}: pg_restore failed: {message}")


def counts(server: Server, database: str, tables: Iterable[str]) -> dict[str, int | None]:
    """Rows in each `schema.table` of `database` (None for a table that is not there)."""
    found: dict[str, int | None] = {}
    with connect(server, database, autocommit=True) as conn:
        for qualified in tables:
            schema, table = qualified.split(".", 1)
            if conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()[0] is None:
                found[qualified] = None
                continue
            found[qualified] = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]
    return found


def unvalidated_constraints(server: Server, database: str) -> list[str]:
    """Foreign keys and checks PostgreSQL holds as not validated (a restore that skipped them)."""
    with connect(server, database, autocommit=True) as conn:
        return [f"{row[0]}.{row[1]}" for row in conn.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE NOT convalidated")]

