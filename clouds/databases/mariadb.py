"""MariaDB: a consistent copy of a live database into a new one, databases made, moved and dropped, dumps streamed.

Why `mariadb-dump --single-transaction | mariadb`: a copy must be one point in
time while production keeps taking writes, locking no more than
`mariadb-dump --single-transaction` does. MariaDB cannot hand one transaction's
snapshot to another session (PostgreSQL's pg_export_snapshot has no match), so
several parallel readers of one moment need FLUSH TABLES WITH READ LOCK, a
global lock on production (mydumper's way). One reader it is, and the fastest
single reader is the server's own: mariadb-dump's START TRANSACTION WITH
CONSISTENT SNAPSHOT, rows read unbuffered (--quick) and written as multi-row
INSERTs, piped straight into the `mariadb` client of the new database, with
foreign-key and unique checks off (the dump's own header does that). Each INSERT
commits on its own: --no-autocommit (one transaction per table) made a 300 MB
clone 19.5 s against 11-12 s without it (measured, issue 11), and a new
database needs no rollback: a copy that fails is dropped whole. Nothing is
written to disk and nothing is compressed. A Python reader would parse and re-encode every value
instead; the client tools move them as the server's own text. (Measured once on
one machine, 300,000 rows, 75 MB of dump: 2.3-2.7 s this way; 6.2 s for a
PyMySQL reader in one consistent snapshot feeding executemany; 4.8 s with the
bytes passed through Python and counted line by line.)

A copy's one dump is loaded by LOADERS `mariadb` clients at once, each table's
section whole to one of them (maria_loaders: the bytes pass through Python in
1 MiB blocks, cut only at mariadb-dump's section comments); with LOADERS = 1 the
dump is joined to one client by an OS pipe and no byte passes through Python.
The dump has no LOCK TABLES around its rows (--skip-add-locks): a table locked by
one loader while another creates a table with a foreign key to it fails its
next INSERT (ERROR 1100, "was not locked with LOCK TABLES"). A
backup's dump does pass through (into the archive), and on the way Doppel counts
each table's rows from the dump's INSERTs (RowCounter), which the manifest
records so a restore can be checked against the very snapshot the dump read.
Events are never copied (like crons, a copy must not run production's jobs);
routines and triggers are.

MariaDB has no RENAME DATABASE: an environment takes a snapshot's database by
moving its tables with one RENAME TABLE (atomic, no copy); a database with views,
routines or triggers, which RENAME TABLE cannot move across schemas, is copied
instead. A second environment always copies. Passwords reach the tools only in
MYSQL_PWD (Server.tool_env), never on a command line.
"""
from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable

import pymysql

from clouds.databases import maria_loaders
from clouds.databases.servers import DatabaseError, DumpLoader, Server, drop_quietly, stderr_tail

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_DUMP_ARGS = ("--single-transaction", "--quick", "--routines", "--triggers", "--skip-events", "--hex-blob",
              "--skip-add-locks", "--skip-dump-date", "--default-character-set=utf8mb4")
_END = b"-- Dump completed"
LOADERS = 2  # mariadb clients loading one copy (maria_loaders); 1: the dump piped straight into one client


def q(name: str) -> str:
    """An identifier quoted for MariaDB."""
    return "`" + name.replace("`", "``") + "`"


def connect(server: Server, database: str | None = None, **kwargs) -> pymysql.connections.Connection:
    """A connection to `database`; DatabaseError (no password in it) when it cannot be made."""
    params = {"user": server.user, "password": server.password() or "", "database": database,
              "connect_timeout": 10, "charset": "utf8mb4", "autocommit": kwargs.pop("autocommit", False)}
    if server.socket:
        params["unix_socket"] = server.socket
    else:
        params.update(host=server.host, port=server.port or 3306)
    try:
        return pymysql.connect(**{k: v for k, v in params.items() if v is not None}, **kwargs)
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"cannot connect to MariaDB database {database or '(none)'} on {server.where} as "
                            f"{server.user}: {error_text(exc)}") from None


def error_text(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[1], str):
        return f"{args[1]} ({args[0]})"
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _rows(server: Server, statement: str, params=(), database: str | None = None) -> list[tuple]:
    try:
        with connect(server, database, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"MariaDB on {server.where}: {error_text(exc)}") from None


def exists(server: Server, database: str) -> bool:
    return bool(_rows(server, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)))


def _charset(server: Server, database: str) -> str:
    found = _rows(server, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                          "WHERE SCHEMA_NAME = %s", (database,))
    return f" CHARACTER SET {found[0][0]} COLLATE {found[0][1]}" if found else ""


def create(server: Server, database: str, template: str | None = None) -> None:
    """A new database; with `template`, a copy of that database (on the same server)."""
    if template is None:
        _rows(server, f"CREATE DATABASE {q(database)}")
        return
    copy(server, template, server, database)


def drop(server: Server, database: str) -> bool:
    """Drop `database` if it is there (sessions using it ended first); whether it was."""
    if not exists(server, database):
        return False
    for (session,) in _rows(server, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                                    "AND ID <> CONNECTION_ID()", (database,)):
        try:
            _rows(server, f"KILL {int(session)}")
        except DatabaseError:
            pass  # gone already, or not ours to end: DROP waits for it
    _rows(server, f"DROP DATABASE IF EXISTS {q(database)}")
    log.info("dropped MariaDB database %s on %s", database, server.where)
    return True


def _movable(server: Server, database: str) -> bool:
    """Whether RENAME TABLE can move every object of `database` (views, routines and triggers it cannot)."""
    return not _rows(server, """
        SELECT 1 FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s UNION ALL
        SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s UNION ALL
        SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s LIMIT 1""", (database,) * 3)


def _tables(server: Server, database: str) -> list[str]:
    return [row[0] for row in _rows(server, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                                            "TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'", (database,))]


def _moving(old: str) -> str:
    return f"doppel: moving the tables of {old} here"


def rename(server: Server, old: str, new: str) -> None:
    """Give `old`'s tables to a new database `new` (one RENAME TABLE), and drop `old`.

    `new` says what is under way in its comment until `old` is gone, so a move that died between the
    RENAME TABLE and the DROP is finished by resume_rename, not taken for an empty snapshot.
    """
    if not _movable(server, old):
        copy(server, old, server, new)
        drop(server, old)
        return
    tables = _tables(server, old)
    _rows(server, f"CREATE DATABASE {q(new)}{_charset(server, old)} COMMENT %s", (_moving(old),))
    if tables:
        _rows(server, "RENAME TABLE " + ", ".join(f"{q(old)}.{q(t)} TO {q(new)}.{q(t)}" for t in tables))
    _rows(server, f"DROP DATABASE {q(old)}")
    _rows(server, f"ALTER DATABASE {q(new)} COMMENT ''")


def resume_rename(server: Server, old: str, new: str) -> None:
    """Finish, or undo, a rename of `old` to `new` that died half-way (RENAME TABLE moves all tables or none)."""
    found = _rows(server, "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (new,))
    if not found or found[0][0] != _moving(old):
        return
    if exists(server, old) and _tables(server, old):
        drop(server, new)  # the tables never moved
        return
    drop(server, old)
    _rows(server, f"ALTER DATABASE {q(new)} COMMENT ''")


def size(server: Server, database: str) -> int:
    found = _rows(server, "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
                          "WHERE TABLE_SCHEMA = %s", (database,))
    return int(found[0][0])


def _tool(server: Server, name: str, *args: str) -> list[str]:
    """A command line for mariadb/mariadb-dump (no option file read; the password goes in MYSQL_PWD)."""
    where = (["--socket", server.socket] if server.socket else
             ["--host", server.host, "--port", str(server.port or 3306), "--protocol", "tcp"])
    return [name, "--no-defaults", "--user", server.user, *where, *args]


class RowCounter:
    """Rows per table, counted from a mariadb-dump stream as it passes, at the speed of bytes.count.

    A row of an INSERT starts at the beginning of a line (mariadb-dump 10.11 writes one row a line), and a
    newline never occurs inside a value (it is escaped), so an INSERT's rows are the newlines followed by `(`
    up to the first `;` that ends a line. Rows on the INSERT's own line (older dumps write several a line) are
    counted one by one, with the strings taken out first.
    """
    _INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES ?", re.M)
    _CREATE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)` \(", re.M)
    _STRING = re.compile(rb"'(?:[^'\\]|\\.)*'", re.S)

    def __init__(self):
        self.tables: dict[str, int] = {}
        self._carry = b""               # the last line, not whole yet
        self._table: str | None = None  # inside this table's INSERT
        self.tail = b""

    def feed(self, block: bytes) -> None:
        self.tail = (self.tail + bytes(block[-64:]))[-64:]
        end = block.rfind(b"\n") if isinstance(block, bytes) else bytes(block).rfind(b"\n")
        if end < 0:
            self._carry += bytes(block)
            return
        region, self._carry = self._carry + bytes(block[:end + 1]), bytes(block[end + 1:])
        for created in self._CREATE.finditer(region):
            self.tables.setdefault(_name(created.group(1)), 0)
        position = 0
        while position < len(region):
            if self._table is None:
                found = self._INSERT.search(region, position)
                if not found:
                    return
                self._table = _name(found.group(1))
                line_end = region.index(b"\n", found.end())
                rest = self._STRING.sub(b"''", region[found.end():line_end]).rstrip()
                if rest.startswith(b"("):  # rows on the INSERT's own line
                    self._add(rest.count(b"),(") + 1)
                position = line_end
                if rest.endswith(b";"):
                    self._table = None
                    continue
            finish = region.find(b";\n", position)
            stop = finish if finish >= 0 else len(region)
            self._add(region.count(b"\n(", position, stop) + (position == 0 and region.startswith(b"(")))
            if finish < 0:
                return
            self._table, position = None, finish + 2

    def _add(self, rows: int) -> None:
        self.tables[self._table] = self.tables.get(self._table, 0) + rows

    def complete(self) -> bool:
        """Whether the stream ended with mariadb-dump's last line (a dump cut short does not)."""
        return _END in self.tail


def _name(quoted: bytes) -> str:
    return quoted.replace(b"``", b"`").decode()


def dump(server: Server, database: str, sink: Callable[[bytes], object], chunk: int = _CHUNK) -> dict[str, int]:
    """Stream `database` as mariadb-dump SQL (one transaction's snapshot) into `sink`; the rows per table it holds."""
    counter = RowCounter()
    with tempfile.TemporaryFile() as stderr, subprocess.Popen(
            _tool(server, "mariadb-dump", *_DUMP_ARGS, database), stdout=subprocess.PIPE, stderr=stderr,
            env=server.tool_env()) as proc:
        try:
            while block := proc.stdout.read(chunk):
                counter.feed(block)
                sink(block)
        except BaseException:
            proc.kill()
            raise
        code = proc.wait()
        stderr.seek(0)
        if code != 0 or not counter.complete():
            raise DatabaseError(f"dumping MariaDB database {database}: mariadb-dump failed: "
                                f"{stderr_tail(stderr.read())}")
    return dict(counter.tables)


def copy(source: Server, source_db: str, target: Server, target_db: str, loaders: int | None = None) -> None:
    """`source_db` as of one moment into a new database `target_db`. A database of that name left by an attempt
    that died is dropped first; one that fails half-way is dropped before the error is raised."""
    drop(target, target_db)
    _rows(target, f"CREATE DATABASE {q(target_db)}{_charset(source, source_db)}")
    try:
        loaders = LOADERS if loaders is None else loaders
        if loaders > 1:
            maria_loaders.load(_tool(source, "mariadb-dump", *_DUMP_ARGS, source_db), source.tool_env(),
                               _tool(target, "mariadb", "--binary-mode", "--batch", target_db), target.tool_env(),
                               loaders)
        else:
            _pipe(source, source_db, target, target_db)
    except BaseException as exc:
        drop_quietly(drop, target, target_db)
        if isinstance(exc, DatabaseError):
            raise DatabaseError(f"copying MariaDB database {source_db} into {target_db}: {exc}") from None
        raise


def _pipe(source: Server, source_db: str, target: Server, target_db: str) -> None:
    """mariadb-dump of `source_db` into the mariadb client of `target_db`, joined by an OS pipe (no byte through
    Python); each with its own server's password in its own environment."""
    with tempfile.TemporaryFile() as dump_errors, tempfile.TemporaryFile() as load_errors:
        dumping = subprocess.Popen(_tool(source, "mariadb-dump", *_DUMP_ARGS, source_db), stdout=subprocess.PIPE,
                                   stderr=dump_errors, env=source.tool_env())
        try:
            loading = subprocess.Popen(_tool(target, "mariadb", "--binary-mode", "--batch", target_db),
                                       stdin=dumping.stdout, stdout=subprocess.DEVNULL, stderr=load_errors,
                                       env=target.tool_env())
        except BaseException:
            dumping.kill()
            dumping.wait()
            raise
        finally:
            dumping.stdout.close()  # the loader holds the reading end now
        try:
            loaded, dumped = loading.wait(), dumping.wait()
        except BaseException:
            loading.kill()
            dumping.kill()
            raise
        if loaded != 0:  # first: a dump whose reader stopped fails too, for that reason
            load_errors.seek(0)
            raise DatabaseError(f"mariadb failed: {stderr_tail(load_errors.read())}")
        if dumped != 0:  # the loader may have loaded what came before
            dump_errors.seek(0)
            raise DatabaseError(f"mariadb-dump failed: {stderr_tail(dump_errors.read())}")


def clone(source: Server, source_db: str, target: Server, target_db: str) -> int:
    """Copy `source_db` as of one moment into a new database `target_db`; its size in bytes."""
    copy(source, source_db, target, target_db)
    return size(target, target_db)


class Restoring(DumpLoader):
    """The `mariadb` client loading a dump into a new database, fed the dump's bytes as they come (no file)."""

    def __init__(self, server: Server, database: str, made: bool = False):
        if not made:
            drop(server, database)
            _rows(server, f"CREATE DATABASE {q(database)}")
        self.counter = RowCounter()
        super().__init__(server, database, _tool(server, "mariadb", "--binary-mode", "--batch", database), drop)

    def write(self, data) -> int:
        self.counter.tail = (self.counter.tail + bytes(data[-64:]))[-64:]
        return super().write(data)

    def finish(self) -> None:
        """Wait for the client; DatabaseError naming the database when it failed (the database is dropped)."""
        code, message = self._ended()
        if code != 0 or not self.counter.complete():
            why = message if code != 0 else "the dump is cut short (it does not end with mariadb-dump's last line)"
            raise self._failed(f"restoring MariaDB database {self.database}: {why}")


def counts(server: Server, database: str, tables: Iterable[str]) -> dict[str, int | None]:
    """Rows in each table of `database` (None for a table that is not there)."""
    present = {row[0] for row in _rows(server, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                                               "TABLE_SCHEMA = %s", (database,))}
    return {table: _rows(server, f"SELECT COUNT(*) FROM {q(database)}.{q(table)}")[0][0] if table in present
            else None for table in tables}


def foreign_keys(cursor, database: str) -> list[tuple[str, str, str, list[str], list[str]]]:
    """(name, table, referenced table, columns, referenced columns) of every foreign key of `database`."""
    cursor.execute("""
        SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, COLUMN_NAME, REFERENCED_COLUMN_NAME
          FROM information_schema.KEY_COLUMN_USAGE
         WHERE TABLE_SCHEMA = %s AND REFERENCED_TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME IS NOT NULL
         ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION""", (database, database))
    keys: dict[tuple[str, str], tuple] = {}
    for name, table, parent, column, referenced in cursor.fetchall():
        key = keys.setdefault((table, name), (name, table, parent, [], []))
        key[3].append(column)
        key[4].append(referenced)
    return list(keys.values())


def orphans(cursor, table: str, columns: list[str], parent: str, referenced: list[str]) -> int:
    """Rows of `table` whose key (all of it set: MATCH SIMPLE) finds no row in `parent`."""
    on = " AND ".join(f"p.{q(b)} = c.{q(a)}" for a, b in zip(columns, referenced))
    present = " AND ".join(f"c.{q(a)} IS NOT NULL" for a in columns)
    cursor.execute(f"SELECT COUNT(*) FROM {q(table)} c WHERE {present} AND NOT EXISTS "
                   f"(SELECT 1 FROM {q(parent)} p WHERE {on})")
    return int(cursor.fetchone()[0])


def unvalidated_constraints(server: Server, database: str) -> list[str]:
    """Foreign keys some rows break, or whose table is missing (a dump loads with FOREIGN_KEY_CHECKS=0, so MariaDB
    checked neither)."""
    broken = []
    try:
        with connect(server, database, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
            present = {row[0] for row in cursor.fetchall()}
            for name, table, parent, columns, referenced in foreign_keys(cursor, database):
                if parent not in present:
                    broken.append(f"{table}.{name} (it references table {parent}, which is not there)")
                elif found := orphans(cursor, table, columns, parent, referenced):
                    broken.append(f"{table}.{name} ({found} row(s) of {table}({', '.join(columns)}) find no {parent})")
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"checking the foreign keys of MariaDB database {database}: {error_text(exc)}") from None
    return broken
