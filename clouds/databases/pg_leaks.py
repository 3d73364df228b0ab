"""The fail-closed after-check of PostgreSQL anonymisation: production values sampled before masking, looked for
after it, inside the clone's transaction.

Most methods make fakes from a space so large that none should ever equal a
production value: the sample's values must be in no row of the column any more.
Methods whose fakes fall among few possible values (a date shifted by a few days,
a short number redigited: pg_fakes.DENSE_METHODS) can give one row's fake equal to
another row's production value by chance, which leaks nothing: for them the check
is per row, by a key the rules leave alone (a primary key, or a unique key of not
null columns), that row's value must have changed. A table without such a key
falls back to the check against every row.
"""
from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from clouds.databases.personal import SAMPLE
from clouds.databases.pg_fakes import is_dense
from clouds.databases.servers import DatabaseError

_SAMPLE = SAMPLE
_ROW_KEYS = """
    SELECT n.nspname, c.relname,
           array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
     ORDER BY i.indisprimary DESC, i.indnatts"""


def _row_keys(conn, catalogue, touched: set) -> dict[tuple[str, str], list[str]]:
    """Each table's first key (primary first) of not null columns that no rule rewrites."""
    keys: dict[tuple[str, str], list[str]] = {}
    for schema, table, columns in conn.execute(_ROW_KEYS):
        whole = [(schema, table, c) for c in columns]
        if all(c in catalogue.not_null and c not in touched for c in whole):
            keys.setdefault((schema, table), list(columns))
    return keys


def _target(column) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(column[0]), sql.Identifier(column[1]))


def keep_samples(conn, catalogue, groups: list[frozenset], rules: Mapping, label) -> list[tuple]:
    """Up to _SAMPLE production values of each column a value method rewrites, kept in the session; what
    check_samples needs to look for them."""
    touched = {column for group in groups for column in group}
    keys = _row_keys(conn, catalogue, touched)
    conn.execute("CREATE TEMP TABLE doppel_sample (col int, val text)")
    sampled = []
    for group in groups:
        rule = rules[group]
        if rule["method"] in ("fixed", "sql"):
            continue  # a fixed value is no one's; a custom expression is the rule-writer's to prove
        for column in sorted(group):
            name = sql.Identifier(column[2])
            key = keys.get(column[:2])
            if key and column not in catalogue.unique and is_dense(rule["method"], catalogue.types[column]):
                rows = sql.Identifier(f"doppel_rows_{len(sampled)}")
                conn.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT {}, t.{}::text AS val FROM {} t "
                                     "WHERE t.{} IS NOT NULL LIMIT %s").format(
                    rows, sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(k)) for k in key), name,
                    _target(column), name), (_SAMPLE,))
                sampled.append((column, rows, key))
                continue
            conn.execute(sql.SQL("INSERT INTO pg_temp.doppel_sample SELECT %s, v FROM (SELECT DISTINCT t.{}::text AS v "
                                 "FROM {} t WHERE t.{} IS NOT NULL LIMIT %s) AS s").format(
                name, _target(column), name), (len(sampled), _SAMPLE))
            sampled.append((column, None, None))
    return sampled


def check_samples(conn, sampled: list[tuple], label) -> None:
    """Fail closed: a kept production value still present (in its own row, for a per-row sample) stops the clone."""
    for index, (column, rows, key) in enumerate(sampled):
        name = sql.Identifier(column[2])
        if rows is None:
            statement = sql.SQL("SELECT count(*) FROM {} t JOIN pg_temp.doppel_sample s ON s.col = %s AND "
                                "t.{}::text = s.val").format(_target(column), name)
            found, where = conn.execute(statement, (index,)).fetchone()[0], ""
        else:
            on = sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in key)
            found = conn.execute(sql.SQL("SELECT count(*) FROM {} s JOIN {} t ON {} WHERE t.{}::text = s.val").format(
                rows, _target(column), on, name)).fetchone()[0]
            where = " in the same row(s)"
        if found:
            raise DatabaseError(f"{label(column)} still holds {found} production value(s){where} after anonymising; "
                                "nothing was kept (a trigger or rule let them through)")
