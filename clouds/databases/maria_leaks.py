"""The fail-closed after-check of MariaDB anonymisation, as pg_leaks.py does it for PostgreSQL: production values
sampled before masking, looked for after it, inside the clone's transaction.

Most methods make fakes from a space so large that none should ever equal a
production value: the sample's values must be in no row of the column any more.
Methods whose fakes fall among few possible values (a date shifted by a few days, a
short number redigited: fakes.DENSE_METHODS) can give one row's fake equal to another
row's production value by chance, which leaks nothing: for them the check is per
row, by a key the rules leave alone (the primary key, or a unique key of not null
columns), that row's value must have changed. A table without such a key falls back
to the check against every row. Values are compared as bytes, as PostgreSQL does.
"""
from __future__ import annotations

from collections.abc import Mapping

from clouds.databases.maria_fakes import is_dense
from clouds.databases.mariadb import q
from clouds.databases.personal import SAMPLE
from clouds.databases.rules import Catalogue, Column, label
from clouds.databases.servers import DatabaseError


def _row_keys(cursor, database: str, catalogue: Catalogue, touched: set) -> dict[str, list[str]]:
    """Each table's first unique key (primary first) of not null columns that no rule rewrites."""
    cursor.execute("SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                   "WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0 "
                   "ORDER BY TABLE_NAME, INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX", (database,))
    indexes: dict[tuple[str, str], list[str]] = {}
    for table, index, column in cursor.fetchall():
        indexes.setdefault((table, index), []).append(column)
    keys: dict[str, list[str]] = {}
    for (table, _index), columns in sorted(indexes.items(), key=lambda item: (item[0][1] != "PRIMARY",
                                                                             len(item[1]))):
        whole = [("", table, c) for c in columns]
        if all(c in catalogue.not_null and c not in touched for c in whole):
            keys.setdefault(table, columns)
    return keys


def keep_samples(cursor, database: str, catalogue: Catalogue, groups: list[frozenset],
                 rules: Mapping) -> list[tuple]:
    """Up to SAMPLE production values of each column a value method rewrites, kept in the session; what
    check_samples needs to look for them."""
    touched = {column for group in groups for column in group}
    keys = _row_keys(cursor, database, catalogue, touched)
    cursor.execute("DROP TEMPORARY TABLE IF EXISTS doppel_sample")
    cursor.execute("CREATE TEMPORARY TABLE doppel_sample (col INT NOT NULL, val LONGBLOB, KEY (col, val(64)))")
    sampled = []
    for group in groups:
        rule = rules[group]
        if rule["method"] in ("fixed", "sql"):
            continue  # a fixed value is no one's; a custom expression is the rule-writer's to prove
        for column in sorted(group):
            name, table = q(column[2]), q(column[1])
            key = keys.get(column[1])
            if key and column not in catalogue.unique and is_dense(rule["method"], catalogue.types[column]):
                rows = f"doppel_rows_{len(sampled)}"
                cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {rows}")
                cursor.execute(f"CREATE TEMPORARY TABLE {rows} AS SELECT {', '.join(f't.{q(k)}' for k in key)}, "
                               f"CAST(t.{name} AS BINARY) AS doppel_val FROM {table} t WHERE t.{name} IS NOT NULL "
                               "LIMIT %s", (SAMPLE,))
                sampled.append((column, rows, key))
                continue
            cursor.execute(f"INSERT INTO doppel_sample SELECT %s, v FROM (SELECT DISTINCT CAST({name} AS BINARY) "
                           f"AS v FROM {table} WHERE {name} IS NOT NULL LIMIT %s) AS s", (len(sampled), SAMPLE))
            sampled.append((column, None, None))
    return sampled


def check_samples(cursor, sampled: list[tuple[Column, str | None, list[str] | None]]) -> None:
    """Fail closed: a kept production value still present (in its own row, for a per-row sample) stops the clone."""
    for index, (column, rows, key) in enumerate(sampled):
        name, table = q(column[2]), q(column[1])
        if rows is None:
            cursor.execute(f"SELECT COUNT(*) FROM {table} t JOIN doppel_sample s ON s.col = %s AND "
                           f"CAST(t.{name} AS BINARY) = s.val", (index,))
            where = ""
        else:
            on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
            cursor.execute(f"SELECT COUNT(*) FROM {rows} s JOIN {table} t ON {on} "
                           f"WHERE CAST(t.{name} AS BINARY) = s.doppel_val")
            where = " in the same row(s)"
        found = cursor.fetchone()[0]
        if found:
            raise DatabaseError(f"{label(column)} still holds {found} production value(s){where} after anonymising; "
                                "nothing was kept (a trigger or rule let them through)")
