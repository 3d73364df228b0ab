"""Anonymising a PostgreSQL clone in SQL, inside the clone's server, keeping every join and every unique key.

One transaction, all or nothing:

1. Foreign keys are read from the catalogue (pg_constraint), single and composite,
   self-references too; columns joined by a foreign key form a group, and a rule
   on any column of a group applies to all of it (rules.py, shared with MariaDB).
2. Columns that look personal (personal.py) and have no rule fail the clone,
   naming table and column: a new column is reported, never silently copied.
3. A group that holds a unique or primary key is rewritten through a map of its
   distinct values to fakes that is collision-free by construction: a fake already
   taken, or equal to any production value, is asked for again (attempt n + 1).
   Other columns are rewritten in place by one UPDATE. The foreign keys of the
   rewritten columns are set aside meanwhile and added back, which validates
   every row: the post-check of every join. Unique indexes hold all along.
4. A sample of each rewritten column's production values is kept (in the
   session) and looked for afterwards: one still there fails the clone.
5. User triggers of the rewritten tables are off meanwhile (an audit trigger would
   copy the old values elsewhere); the rewritten tables are vacuumed (VACUUM FULL)
   and analysed after commit, so no old value stays in a dead row or in the
   planner's statistics.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import contextmanager

import psycopg
from psycopg import sql

from clouds.databases import pg_fakes
from clouds.databases.personal import EMAIL_VALUE, PHONE_VALUE, SAMPLE, unruled_personal_columns
from clouds.databases.postgresql import connect
from clouds.databases.rules import Catalogue, Column, ForeignKey, covered, label, plan
from clouds.databases.servers import DatabaseError, Server

log = logging.getLogger(__name__)

_ATTEMPTS = 8
_COLUMNS = """
    SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, NULL), a.attnotnull
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"""
_FOREIGN_KEYS = """
    SELECT con.conname, cn.nspname, c.relname, fn.nspname, f.relname, pg_get_constraintdef(con.oid),
           array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
           array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)
      FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
      JOIN pg_class f ON f.oid = con.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace
     WHERE con.contype = 'f'"""
_UNIQUE_COLUMNS = """
    SELECT DISTINCT n.nspname, c.relname, a.attname
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indisunique"""


def read_catalogue(conn: psycopg.Connection) -> Catalogue:
    """What the database's catalogue says: columns and their types, foreign keys, unique columns."""
    catalogue = Catalogue(default_schema="public")
    for schema, table, column, type_name, not_null in conn.execute(_COLUMNS):
        catalogue.types[(schema, table, column)] = type_name
        if not_null:
            catalogue.not_null.add((schema, table, column))
    for name, schema, table, fschema, ftable, definition, cols, fcols in conn.execute(_FOREIGN_KEYS):
        key = ForeignKey(name, (schema, table), (fschema, ftable), definition)
        key.pairs = [((schema, table, a), (fschema, ftable, b)) for a, b in zip(cols, fcols)]
        catalogue.foreign_keys.append(key)
    catalogue.unique = {tuple(row) for row in conn.execute(_UNIQUE_COLUMNS)}
    return catalogue


def sampler(conn: psycopg.Connection):
    """personal.py's sample of a column, counted inside the server: (emails, phones, values sampled)."""
    def sample(column: Column) -> tuple[int, int, int]:
        return conn.execute(sql.SQL(
            "SELECT count(*) FILTER (WHERE v ~ %s), count(*) FILTER (WHERE v ~ %s), count(*) "
            "FROM (SELECT {}::text AS v FROM {}.{} WHERE {} IS NOT NULL LIMIT %s) AS sample").format(
            sql.Identifier(column[2]), sql.Identifier(column[0]), sql.Identifier(column[1]),
            sql.Identifier(column[2])), (EMAIL_VALUE, PHONE_VALUE, SAMPLE)).fetchone()
    return sample


def anonymise(server: Server, database: str, rules: list[Mapping], key: bytes) -> dict[str, int]:
    """Apply the rules to `database` on `server`; rows rewritten per column. DatabaseError (naming table and column)
    leaves the database as it was."""
    conn = connect(server, database)
    changed: dict[str, int] = {}
    try:
        ipad, opad = pg_fakes.pads(key)
        conn.execute("SELECT set_config('doppel.ipad', %s, false), set_config('doppel.opad', %s, false)", (ipad, opad))
        conn.execute(pg_fakes.FUNCTIONS)
        catalogue = read_catalogue(conn)
        truncates, groups = plan(catalogue, rules)
        unruled = unruled_personal_columns(catalogue.types, covered(catalogue, truncates, groups), sampler(conn))
        if unruled:
            raise DatabaseError(f"{', '.join(unruled)} look(s) personal and no anonymise rule covers them; add a "
                                "rule to clone.anonymise (method: keep if it is not personal)")
        rewritten = [g for g, rule in groups.items() if rule["method"] != "keep"]
        tables = sorted({column[:2] for group in rewritten for column in group} |
                        {catalogue.column_of(r)[:2] for r in truncates})
        for schema, table in tables:
            conn.execute(sql.SQL("ALTER TABLE {}.{} DISABLE TRIGGER USER").format(sql.Identifier(schema),
                                                                                  sql.Identifier(table)))
        touched = {column for group in rewritten for column in group}
        keys = [k for k in catalogue.foreign_keys if any(c in touched or r in touched for c, r in k.pairs)]
        for fk in keys:
            conn.execute(sql.SQL("ALTER TABLE {}.{} DROP CONSTRAINT {}").format(
                *map(sql.Identifier, fk.table), sql.Identifier(fk.name)))
        samples = _keep_samples(conn, catalogue, rewritten, groups)
        for rule in truncates:
            schema, table, _ = catalogue.column_of(rule)
            conn.execute(sql.SQL("TRUNCATE {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            changed[f"{table}.* (truncate)"] = -1
        for group in rewritten:
            changed.update(_rewrite_group(conn, catalogue, group, groups[group]))
        for fk in keys:
            _restore_foreign_key(conn, fk)
        _check_samples(conn, samples)
        for schema, table in tables:
            conn.execute(sql.SQL("ALTER TABLE {}.{} ENABLE TRIGGER USER").format(sql.Identifier(schema),
                                                                                 sql.Identifier(table)))
        conn.commit()
        _vacuum(conn, tables)
        return changed
    except psycopg.Error as exc:
        raise DatabaseError(f"anonymising PostgreSQL database {database}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        conn.close()


def _target(column: Column) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(column[0]), sql.Identifier(column[1]))


def _rewrite_group(conn, catalogue: Catalogue, group: frozenset, rule: Mapping) -> dict[str, int]:
    """Rewrite every column of one group: through a collision-free map when uniqueness matters, else in place."""
    method = rule["method"]
    columns = sorted(group)
    if method in ("null", "fixed", "sql") or not any(c in catalogue.unique for c in columns):
        return {f"{label(c)} ({method})": _rewrite_in_place(conn, catalogue, c, rule) for c in columns}
    first_type = catalogue.types[columns[0]]
    try:
        fakes = [pg_fakes.expression(method, "orig", first_type, str(n), rule) for n in range(_ATTEMPTS)]
    except ValueError as exc:
        raise DatabaseError(f"{label(columns[0])}: {exc}") from None
    conn.execute("DROP TABLE IF EXISTS pg_temp.doppel_map")
    union = sql.SQL(" UNION ").join(
        sql.SQL("SELECT {}::{} FROM {}").format(sql.Identifier(c[2]), sql.SQL(first_type), _target(c)) for c in columns)
    conn.execute(sql.SQL("CREATE TEMP TABLE doppel_map AS SELECT orig, NULL::{} AS fake "
                         "FROM ({}) AS v(orig) WHERE orig IS NOT NULL").format(sql.SQL(first_type), union))
    conn.execute("CREATE INDEX ON pg_temp.doppel_map (orig)")
    for fake in fakes:
        conn.execute(f"UPDATE pg_temp.doppel_map SET fake = {fake} WHERE fake IS NULL")
        conn.execute("ANALYZE pg_temp.doppel_map")
        clashes = conn.execute("""
            UPDATE pg_temp.doppel_map m SET fake = NULL FROM (
                SELECT orig FROM (SELECT orig, row_number() OVER (PARTITION BY fake ORDER BY orig) AS r
                                    FROM pg_temp.doppel_map) AS ranked WHERE r > 1
                UNION SELECT m2.orig FROM pg_temp.doppel_map m2 JOIN pg_temp.doppel_map o ON m2.fake = o.orig
            ) AS clash WHERE m.orig = clash.orig""").rowcount
        if clashes == 0:
            break
    else:
        raise DatabaseError(f"{label(columns[0])}: {method} cannot give {len(columns)} column(s) distinct fakes "
                            "(too few possible values for a unique column); choose another method")
    changed = {}
    for column in columns:
        try:
            with conn.transaction():
                changed[f"{label(column)} ({method})"] = conn.execute(sql.SQL(
                    "UPDATE {} AS t SET {} = m.fake::{} FROM pg_temp.doppel_map m WHERE t.{}::{} = m.orig").format(
                    _target(column), sql.Identifier(column[2]), sql.SQL(catalogue.types[column]),
                    sql.Identifier(column[2]), sql.SQL(first_type))).rowcount
        except psycopg.errors.IntegrityError as exc:
            raise DatabaseError(f"anonymising {label(column)} with {method} broke a constraint: "
                                f"{str(exc).splitlines()[0]}") from None
    return changed


def _rewrite_in_place(conn, catalogue: Catalogue, column: Column, rule: Mapping) -> int:
    method, name = rule["method"], sql.Identifier(column[2])
    column_type = catalogue.types[column]
    params = None
    if method == "null":
        value = sql.SQL("NULL")
    elif method == "fixed":
        value, params = sql.SQL("%s::" + column_type), (rule["value"],)
    elif method == "sql":
        expression = rule["expression"].replace("{", "{{").replace("}", "}}")
        value = sql.SQL("(SELECT (" + expression + ") FROM (SELECT t.{} AS value) AS doppel_row)::" +
                        column_type).format(name)
    else:
        try:
            value = sql.SQL("coalesce(nullif({}, t.{}), {})").format(
                sql.SQL(pg_fakes.expression(method, "t." + name.as_string(conn), column_type, "0", rule)), name,
                sql.SQL(pg_fakes.expression(method, "t." + name.as_string(conn), column_type, "1", rule)))
        except ValueError as exc:
            raise DatabaseError(f"{label(column)}: {exc}") from None
    where = sql.SQL("") if method in ("null", "fixed", "sql") else sql.SQL(" WHERE t.{} IS NOT NULL").format(name)
    try:
        with conn.transaction():
            return conn.execute(sql.SQL("UPDATE {} AS t SET {} = {}").format(_target(column), name, value) + where,
                                params).rowcount
    except psycopg.Error as exc:
        hint = "; use method hash instead of null" if method == "null" else ""
        raise DatabaseError(f"anonymising {label(column)} with {method} broke a constraint or failed: "
                            f"{str(exc).strip().splitlines()[0]}{hint}") from None


def _restore_foreign_key(conn, fk: ForeignKey) -> None:
    """Add a set-aside foreign key back; PostgreSQL checks every row, so a broken join fails here."""
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} " + fk.definition.replace("{", "{{").replace(
                "}", "}}")).format(
                *map(sql.Identifier, fk.table), sql.Identifier(fk.name)))
    except psycopg.errors.IntegrityError:
        columns = ", ".join(label(child) for child, _ in fk.pairs)
        raise DatabaseError(f"after anonymising, foreign key {fk.name} of {columns} no longer joins "
                            f"{fk.references[1]}: a rule broke it; rule the referenced columns the same way") from None


def _keep_samples(conn, catalogue: Catalogue, groups: list[frozenset], rules: Mapping) -> list[Column]:
    """Up to SAMPLE production values of each column a value method rewrites, kept in the session."""
    conn.execute("CREATE TEMP TABLE doppel_sample (col int, val text)")
    sampled = []
    for group in groups:
        if rules[group]["method"] in ("fixed", "sql"):
            continue  # a fixed value is no one's; a custom expression is the rule-writer's to prove
        for column in sorted(group):
            conn.execute(sql.SQL("INSERT INTO pg_temp.doppel_sample SELECT %s, v FROM (SELECT DISTINCT t.{}::text AS v "
                                 "FROM {} t WHERE t.{} IS NOT NULL LIMIT %s) AS s").format(
                sql.Identifier(column[2]), _target(column), sql.Identifier(column[2])), (len(sampled), SAMPLE))
            sampled.append(column)
    return sampled


def _check_samples(conn, sampled: list[Column]) -> None:
    """Fail closed: a kept production value still present in its column stops the clone."""
    for index, column in enumerate(sampled):
        found = conn.execute(sql.SQL("SELECT count(*) FROM {} t JOIN pg_temp.doppel_sample s ON s.col = %s AND "
                                     "t.{}::text = s.val").format(_target(column), sql.Identifier(column[2])),
                             (index,)).fetchone()[0]
        if found:
            raise DatabaseError(f"{label(column)} still holds {found} production value(s) after anonymising; "
                                "nothing was kept (a trigger or rule let them through)")


def _vacuum(conn, tables: list[tuple[str, str]]) -> None:
    """Rewrite the anonymised tables, so no production value stays in a dead row or in the statistics."""
    conn.autocommit = True
    for schema, table in tables:
        conn.execute(sql.SQL("VACUUM (FULL, ANALYZE) {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))


@contextmanager
def reading(server: Server, database: str):
    """(catalogue, sampler) of `database`, read in a read-only session (for `doppel anonymise check`)."""
    with connect(server, database, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        yield read_catalogue(conn), sampler(conn)
