"""Anonymising a PostgreSQL clone in SQL, inside the clone's server, keeping every join and every unique key.

One transaction, all or nothing:

1. Foreign keys are read from the catalogue (pg_constraint), single and composite,
   self-references too; columns joined by a foreign key form a group, and a rule
   on any column of a group applies to all of it (rules.py, shared with MariaDB).
2. Columns that look personal (personal.py) and have no rule fail the clone,
   naming table and column: a new column is reported, never silently copied.
3. Each group's distinct production values get their fakes once, in a temporary map
   (pg_fakes: the HMAC of each value under the key, then the fake made from it). A
   group that holds a unique or primary key gets a map that is collision-free by
   construction: a fake already taken, or equal to any production value, is asked for
   again (the next attempt). Then one UPDATE per table rewrites all its ruled columns
   through their maps (null, fixed and sql in place). The foreign keys of the
   rewritten columns are set aside meanwhile and added back, which validates every
   row: the post-check of every join. Unique indexes hold all along.
4. A sample of each rewritten column's production values is kept (in the session) and
   looked for afterwards: one still there fails the clone (pg_leaks.py; per row for
   methods with few possible fakes, such as date_shift).
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

from clouds.databases import pg_fakes, pg_leaks
from clouds.databases.personal import EMAIL_VALUE, PHONE_VALUE, SAMPLE, unruled_personal_columns
from clouds.databases.postgresql import connect
from clouds.databases.rules import Catalogue, Column, ForeignKey, covered, label, plan
from clouds.databases.servers import DatabaseError, Server

log = logging.getLogger(__name__)

_ATTEMPTS = 8
# The clone is ours alone and is thrown away if this fails: memory for the maps' hashes and sorts (and the
# vacuum's index builds), temporary tables kept in memory, and no wait for the WAL flush at commit.
_SESSION = ("SET work_mem = '128MB'; SET maintenance_work_mem = '256MB'; SET temp_buffers = '256MB'; "
            "SET synchronous_commit = off; SET jit = off")
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
        conn.execute(_SESSION)
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
        samples = pg_leaks.keep_samples(conn, catalogue, rewritten, groups, label)
        for rule in truncates:
            schema, table, _ = catalogue.column_of(rule)
            conn.execute(sql.SQL("TRUNCATE {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            changed[f"{table}.* (truncate)"] = -1
        by_table: dict[tuple[str, str], list] = {}
        first_types = {}
        for index, group in enumerate(rewritten):
            rule = groups[group]
            value_map = None if rule["method"] in ("null", "fixed", "sql") else _value_map(
                conn, catalogue, group, rule, index)
            for column in sorted(group):
                by_table.setdefault(column[:2], []).append((column, rule, value_map))
                first_types[column] = catalogue.types[min(group)]
        for table, ruled in sorted(by_table.items()):
            changed.update(_rewrite_table(conn, catalogue, table, ruled, first_types))
        for fk in keys:
            _restore_foreign_key(conn, fk)
        pg_leaks.check_samples(conn, samples, label)
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


def _value_map(conn, catalogue: Catalogue, group: frozenset, rule: Mapping, index: int) -> sql.Identifier:
    """A temporary table of the group's distinct production values and their fakes (`orig`, `h`: its MAC, `fake`),
    each computed once. For a group with a unique column the fakes are collision-free: a fake already taken, or
    equal to any production value, is asked for again (the next attempt), the first value by bytes keeping a fake
    two share (not by the column's order: MariaDB and other collations must pick the same value, so the fakes are
    the same in every database of the environment); else a fake equal to its own value is asked for again."""
    method, columns = rule["method"], sorted(group)
    first_type = catalogue.types[columns[0]]
    name = sql.Identifier(f"doppel_map_{index}")
    try:
        make = lambda h: pg_fakes.fake(method, "orig", h, first_type, rule)  # noqa: E731
        made = make("h")
    except ValueError as exc:
        raise DatabaseError(f"{label(columns[0])}: {exc}") from None
    unique = any(c in catalogue.unique for c in columns)
    if not unique:  # another attempt only where the fake is its own production value (rare, so never inlined)
        retries = [f"nullif({make(pg_fakes.next_mac('h', n))}, orig)" for n in range(1, 3)]
        made = f"coalesce(nullif({made}, orig), {', '.join(retries)}, {make(pg_fakes.next_mac('h', 3))})"
    union = sql.SQL(" UNION ").join(
        sql.SQL("SELECT DISTINCT {}::{} FROM {}").format(sql.Identifier(c[2]), sql.SQL(first_type), _target(c))
        for c in columns)
    made = made.replace("{", "{{").replace("}", "}}")  # the fakes' arrays are SQL, not format fields
    conn.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT orig, h, " + made + " AS fake FROM (SELECT orig, " +
                         pg_fakes.mac(method, "orig") + " AS h FROM ({}) AS v(orig) WHERE orig IS NOT NULL OFFSET 0) "
                         "AS keyed").format(name, union))
    if any(c not in catalogue.not_null for c in columns):  # looked up row by row (_rewrite_table)
        conn.execute(sql.SQL("CREATE INDEX ON {} (orig)").format(name))
    if not unique:
        return name
    for attempt in range(1, _ATTEMPTS + 1):
        conn.execute(sql.SQL("ANALYZE {}").format(name))
        clashes = conn.execute(sql.SQL("""
            UPDATE {0} m SET fake = NULL FROM (
                SELECT orig FROM (SELECT orig, row_number() OVER (PARTITION BY fake
                                                                  ORDER BY convert_to(orig::text, 'UTF8')) AS r
                                    FROM {0}) AS ranked WHERE r > 1
                UNION SELECT m2.orig FROM {0} m2 JOIN {0} o ON m2.fake = o.orig
            ) AS clash WHERE m.orig = clash.orig""").format(name)).rowcount
        if clashes == 0:
            return name
        again = pg_fakes.next_mac("h", attempt)
        conn.execute(sql.SQL("UPDATE {} SET h = " + again + " WHERE fake IS NULL").format(name))
        conn.execute(sql.SQL("UPDATE {} SET fake = " + made + " WHERE fake IS NULL").format(name))
    raise DatabaseError(f"{label(columns[0])}: {method} cannot give {len(columns)} column(s) distinct fakes "
                        "(too few possible values for a unique column); choose another method")


def _rewrite_table(conn, catalogue: Catalogue, table: tuple[str, str], ruled: list[tuple[Column, Mapping, object]],
                   first_types: Mapping) -> dict[str, int]:
    """One UPDATE of every ruled column of one table (one new version of each row, not one per column): values
    through their group's map, null/fixed/sql in place."""
    sets, joins, where, counts = [], [], [], [sql.SQL("count(*)")]
    for index, (column, rule, value_map) in enumerate(ruled):
        name, method = sql.Identifier(column[2]), rule["method"]
        cast = sql.SQL(catalogue.types[column])
        if method == "null":
            value = sql.SQL("NULL")
        elif method == "fixed":
            # a literal, not a parameter: with none, a % in a custom sql rule's expression stays an operator
            value = sql.SQL("{}::{}").format(sql.Literal(rule["value"]), cast)
        elif method == "sql":
            expression = rule["expression"].replace("{", "{{").replace("}", "}}")
            value = sql.SQL("(SELECT (" + expression + ") FROM (SELECT t.{} AS value) AS doppel_row)::{}").format(
                name, cast)
        elif column in catalogue.not_null:  # a hash join; a row with NULL here would drop out of it
            alias = sql.Identifier(f"m{index}")
            joins.append(sql.SQL("{} AS {}").format(value_map, alias))
            where.append(sql.SQL("{}.orig = t.{}::{}").format(alias, name, sql.SQL(first_types[column])))
            value = sql.SQL("{}.fake::{}").format(alias, cast)
        else:
            value = sql.SQL("(SELECT m.fake FROM {} m WHERE m.orig = t.{}::{})::{}").format(
                value_map, name, sql.SQL(first_types[column]), cast)
        sets.append(sql.SQL("{} = {}").format(name, value))
        counts.append(sql.SQL("count(*) FILTER (WHERE {})").format(sql.Identifier(f"c{index}")))
    returning = sql.SQL(", ").join(
        sql.SQL("t.{} IS NOT NULL AS {}").format(sql.Identifier(column[2]), sql.Identifier(f"c{index}"))
        for index, (column, _rule, _map) in enumerate(ruled))
    statement = sql.SQL("WITH u AS (UPDATE {}.{} AS t SET {}{}{} RETURNING {}) SELECT {} FROM u").format(
        *map(sql.Identifier, table), sql.SQL(", ").join(sets),
        sql.SQL(" FROM ") + sql.SQL(", ").join(joins) if joins else sql.SQL(""),
        sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""), returning,
        sql.SQL(", ").join(counts))
    try:
        with conn.transaction():
            rows, *written = conn.execute(statement).fetchone()
    except psycopg.Error as exc:
        involved = _constraint_columns(conn, exc.diag.constraint_name) | {exc.diag.column_name}
        blamed = [f"{label(c)} ({r['method']})" for c, r, _m in ruled if c[2] in involved] or [
            f"{label(c)} ({r['method']})" for c, r, _m in ruled]
        hint = "; use method hash instead of null" if any(r["method"] == "null" for _c, r, _m in ruled) and \
            isinstance(exc, psycopg.errors.NotNullViolation) else ""
        raise DatabaseError(f"anonymising {', '.join(blamed)} broke a constraint or failed: "
                            f"{str(exc).strip().splitlines()[0]}{hint}") from None
    return {f"{label(c)} ({r['method']})": rows if r["method"] in ("null", "fixed", "sql") else n
            for (c, r, _m), n in zip(ruled, written)}


def _constraint_columns(conn, constraint: str | None) -> set[str]:
    """The columns of a constraint or unique index an error names (so the message names the rule that broke it)."""
    if not constraint:
        return set()
    return {row[0] for row in conn.execute("""
        SELECT a.attname FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE ic.relname = %s
        UNION SELECT a.attname FROM pg_constraint con
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey) WHERE con.conname = %s""",
        (constraint, constraint))}


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
