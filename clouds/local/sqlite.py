"""SQLite, done right for copies: a consistent copy of a live database, anonymisation inside a copy.

A file copy of a live SQLite database can catch it mid-transaction (or miss the WAL
file holding its latest commits). Where the filesystem has reflinks, the copy is a
reflink of the database file (and of its WAL) made inside a read transaction, so it
holds one committed state and costs the same whatever its size; elsewhere the online
backup API copies one committed state, even while the application keeps writing.
Anonymisation runs as SQL UPDATEs on the clone's copy only, with secure_delete on and a
VACUUM after, so the personal data replaced does not linger in free pages of the file.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable, Mapping

from clouds.local.copying import reflink
from clouds.rewrite.anonymise import VALUE_METHODS, Pseudonyms

SIDE_SUFFIXES = ("-wal", "-shm", "-journal")  # files SQLite keeps beside a database
_BUSY_TIMEOUT = 30.0


class SqliteError(RuntimeError):
    """A SQLite operation on a copy failed; the message names the database and the table or column."""


def capture_database(source: Path, target: Path) -> int:
    """Copy the committed state of the database at `source` into a new file `target`: a reflink where the
    filesystem can (clone_database), the online backup elsewhere (backup_database); returns its size."""
    if not Path(source).is_file():
        raise SqliteError(f"{source} does not exist")
    size = clone_database(source, target)
    return backup_database(source, target) if size is None else size


def clone_database(source: Path, target: Path) -> int | None:
    """A reflink of the database at `source` (and of its WAL) as `target`, one committed state; None (and no
    `target`) where the filesystem has no reflinks.

    Made inside a read transaction, which never holds production's writers up. With a
    rollback journal, its shared lock keeps every writer from committing (or spilling into
    the file) until the reflink is made, and taking it rolled back any journal a crashed
    writer left. In WAL mode commits go on into the WAL: the database is reflinked first,
    then the WAL, and the copy replays the WAL's committed frames on opening, as after a
    power cut. It is consistent because the read lock keeps checkpoints from copying into
    the database any frame the WAL reflink will not hold too, and keeps the WAL from being
    restarted under a reader that needs it; frames of a commit still being written fail
    their checksums and are left out. The copy's WAL is folded into it at once, so the copy
    is one file.
    """
    src = sqlite3.connect(Path(source), timeout=_BUSY_TIMEOUT, isolation_level=None)
    target, wal = Path(target), Path(f"{target}-wal")
    try:
        src.execute("BEGIN")
        try:
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read lock, taken now
            if not _reflink_path(Path(source), target):
                return None  # no reflinks here: the online backup
            in_wal = src.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            if in_wal and Path(f"{source}-wal").is_file() and not _reflink_path(Path(f"{source}-wal"), wal):
                target.unlink()
                return None
        finally:
            src.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise SqliteError(f"copying {source} failed: {exc}") from exc
    finally:
        src.close()
    if wal.exists():
        copy = sqlite3.connect(target)
        try:
            copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            copy.close()  # the last connection: the WAL file goes
    return target.stat().st_size


def _reflink_path(source: Path, target: Path) -> bool:
    """`target` made as a reflink of `source` with its mode (owner-only until then), or not made at all."""
    descriptor = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        made = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            done = reflink(descriptor, made, str(source), str(target))
            if done:
                os.fchmod(made, os.fstat(descriptor).st_mode & 0o7777)
        finally:
            os.close(made)
        if not done:
            target.unlink()
        return done
    finally:
        os.close(descriptor)


def backup_database(source: Path, target: Path) -> int:
    """Copy the committed state of the database at `source` into a new file `target`; returns its size.

    One backup step over all pages: it holds a read transaction for the whole copy,
    so the copy is one consistent state, and (in WAL mode) writers are not blocked.
    The source is opened read-write but never written: a read-only connection to a
    WAL database would leave empty -wal/-shm files behind in production's directory,
    whereas a normal connection removes them when it is the last to close.
    """
    if not Path(source).is_file():
        raise SqliteError(f"{source} does not exist")
    try:
        src = sqlite3.connect(Path(source), timeout=_BUSY_TIMEOUT)
    except sqlite3.Error as exc:
        raise SqliteError(f"cannot open {source} read-only: {exc}") from exc
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1, sleep=0.05)
    except sqlite3.Error as exc:
        raise SqliteError(f"online backup of {source} failed: {exc}") from exc
    finally:
        dst.close()
        src.close()
    return Path(target).stat().st_size


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _columns(connection: sqlite3.Connection, table: str) -> list[str] | None:
    rows = connection.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    return [row[1] for row in rows] or None


def anonymise_database(path: Path, rules: Iterable[Mapping], pseudonyms: Pseudonyms) -> dict[str, int]:
    """Apply anonymise rules (table, column, method) to the database at `path`; rows changed per rule.

    All rules run in one transaction: a failure leaves the copy as it was. Triggers on
    the rewritten tables are set aside meanwhile (an audit trigger would otherwise copy
    the old values somewhere else), and put back as they were.
    """
    connection = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT)
    connection.create_function("doppel_fake", 2, pseudonyms.fake, deterministic=True)
    changed: dict[str, int] = {}
    try:
        connection.execute("PRAGMA secure_delete = ON")
        connection.execute("BEGIN IMMEDIATE")
        rules = list(rules)
        tables = sorted({rule["table"] for rule in rules})
        triggers = _set_triggers_aside(connection, tables)
        for rule in rules:
            label = f"{rule['table']}.{rule.get('column') or '*'} ({rule['method']})"
            changed[label] = _apply(connection, path, rule)
        _forget_statistics(connection, tables)
        for sql in triggers:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("VACUUM")  # rebuild the file: no replaced value stays in a free page
        if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
    return changed


def _apply(connection: sqlite3.Connection, path: Path, rule: Mapping) -> int:
    table, column, method = rule["table"], rule.get("column"), rule["method"]
    columns = _columns(connection, table)
    if columns is None:
        raise SqliteError(f"{Path(path).name}: there is no table {table!r} to anonymise; fix clone.anonymise "
                          "in doppel.yaml (table names are case-sensitive here)")
    if method == "truncate":
        return connection.execute(f"DELETE FROM {_quote(table)}").rowcount
    if column not in columns:
        raise SqliteError(f"{Path(path).name}: table {table!r} has no column {column!r} (it has: "
                          f"{', '.join(columns)}); fix clone.anonymise in doppel.yaml")
    try:
        if method == "null":
            return connection.execute(f"UPDATE {_quote(table)} SET {_quote(column)} = NULL").rowcount
        if method in VALUE_METHODS:
            return connection.execute(
                f"UPDATE {_quote(table)} SET {_quote(column)} = doppel_fake(?, {_quote(column)}) "
                f"WHERE {_quote(column)} IS NOT NULL", (method,)).rowcount
    except sqlite3.IntegrityError as exc:
        hint = "use method: hash instead of null" if method == "null" else "check the column's constraints"
        raise SqliteError(f"{Path(path).name}: anonymising {table}.{column} with {method} broke a constraint "
                          f"({exc}); {hint}") from None
    raise SqliteError(f"unknown anonymise method {method!r}")


def _set_triggers_aside(connection: sqlite3.Connection, tables: list[str]) -> list[str]:
    """Drop the triggers on `tables` inside the transaction; returns the SQL that recreates them."""
    if not tables:
        return []
    marks = ",".join("?" * len(tables))
    rows = connection.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks})", tables).fetchall()
    for name, _sql in rows:
        connection.execute(f"DROP TRIGGER {_quote(name)}")
    return [sql for _name, sql in rows]


def _forget_statistics(connection: sqlite3.Connection, tables: list[str]) -> None:
    """ANALYZE's sqlite_stat4 keeps sample index keys (real values): drop those of rewritten tables."""
    present = {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE name IN ('sqlite_stat3', 'sqlite_stat4')")}
    for stat_table in sorted(present):
        for table in tables:
            connection.execute(f"DELETE FROM {stat_table} WHERE tbl = ?", (table,))
