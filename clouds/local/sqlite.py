"""SQLite, done right for copies: online backup of a live database, anonymisation inside a copy.

A file copy of a live SQLite database can catch it mid-transaction (or miss the WAL
file holding its latest commits); the online backup API copies one committed state,
even while the application keeps writing. Anonymisation runs as SQL UPDATEs on the
clone's copy only, with secure_delete on and a VACUUM after, so the personal data
replaced does not linger in free pages of the file.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Mapping

from clouds.rewrite.anonymise import VALUE_METHODS, Pseudonyms

SIDE_SUFFIXES = ("-wal", "-shm", "-journal")  # files SQLite keeps beside a database
_BUSY_TIMEOUT = 30.0


class SqliteError(RuntimeError):
    """A SQLite operation on a copy failed; the message names the database and the table or column."""


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
