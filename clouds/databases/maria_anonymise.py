"""Anonymising a MariaDB clone in SQL, inside the clone's server, keeping every join and every unique key.

The same rules, groups and fakes as PostgreSQL (rules.py, maria_fakes.py), in
MariaDB's terms:

1. Foreign keys are read from information_schema (KEY_COLUMN_USAGE), single and
   composite, self-references too; a rule on any column of a foreign-key group
   applies to all of it (rules.py). Columns that look personal and have no rule
   fail the clone, naming table and column (personal.py).
2. Each group's distinct production values get their MAC and fake once, in a
   temporary map, as in PostgreSQL (maria_fakes.py; same value, same key, same
   fake in both engines). A group that holds a unique or primary key gets a map
   that is collision-free by construction: a fake already taken, or equal to any
   production value, is asked for again (the next attempt). null, fixed (a
   literal) and sql rewrite in place. Unique indexes are enforced all along; a
   rule that breaks one fails.
3. MariaDB cannot set a foreign key aside and check every row when it is added
   back (ALTER TABLE ... ADD FOREIGN KEY checks nothing under FOREIGN_KEY_CHECKS=0,
   and rebuilds the table otherwise), so the masking runs with FOREIGN_KEY_CHECKS=0
   (a parent's key and its children's cannot all change in one statement) and
   every foreign key of a masked table is then checked explicitly: a row whose key
   finds no parent fails the clone, naming the key, table and columns.
4. A sample of each rewritten column's production values is kept in the session
   and looked for afterwards: one still there fails the clone (fail closed;
   maria_leaks.py, per row for methods with few possible fakes such as date_shift).
5. MariaDB cannot switch triggers off: those of the masked tables are set aside
   (an audit trigger would copy the old values elsewhere) and made again after;
   the masked tables are rebuilt (OPTIMIZE TABLE: recreate and analyse), so no old
   value stays in a page or in the statistics.

The rows change in one transaction: a failure rolls them back, and the chain's
compensation drops the half-made database anyway.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from contextlib import contextmanager

import pymysql

from clouds.databases import maria_fakes, maria_leaks
from clouds.databases.mariadb import connect, error_text, foreign_keys, orphans, q
from clouds.databases.personal import EMAIL_VALUE, PHONE_VALUE, SAMPLE, unruled_personal_columns
from clouds.databases.rules import Catalogue, Column, ForeignKey, covered, label, plan
from clouds.databases.servers import DatabaseError, Server

log = logging.getLogger(__name__)
_ATTEMPTS = 8


def read_catalogue(cursor, database: str) -> Catalogue:
    """Columns (schema "": the database is the schema), their types, foreign keys and unique columns."""
    catalogue = Catalogue(default_schema="")
    cursor.execute("""
        SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.COLLATION_NAME, c.IS_NULLABLE
          FROM information_schema.COLUMNS c JOIN information_schema.TABLES t
            ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
         WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE = 'BASE TABLE'""", (database,))
    for table, column, data_type, column_type, collation, nullable in cursor.fetchall():
        key = ("", table, column)
        catalogue.types[key] = data_type.lower()
        catalogue.declared[key] = column_type + (f" COLLATE {collation}" if collation else "")
        if nullable == "NO":
            catalogue.not_null.add(key)
    for name, table, parent, columns, referenced in foreign_keys(cursor, database):
        catalogue.foreign_keys.append(ForeignKey(name, ("", table), ("", parent), pairs=[
            (("", table, a), ("", parent, b)) for a, b in zip(columns, referenced)]))
    cursor.execute("SELECT DISTINCT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                   "WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0", (database,))
    catalogue.unique = {("", table, column) for table, column in cursor.fetchall()}
    return catalogue


def sampler(cursor):
    """personal.py's sample of a column, counted inside the server: (emails, phones, values sampled)."""
    def sample(column: Column) -> tuple[int, int, int]:
        cursor.execute(f"SELECT COALESCE(SUM(v REGEXP %s), 0), COALESCE(SUM(v REGEXP %s), 0), COUNT(*) FROM "
                       f"(SELECT CAST({q(column[2])} AS CHAR) AS v FROM {q(column[1])} WHERE {q(column[2])} "
                       f"IS NOT NULL LIMIT %s) AS sample", (EMAIL_VALUE, PHONE_VALUE, SAMPLE))
        return tuple(int(n) for n in cursor.fetchone())
    return sample


@contextmanager
def reading(server: Server, database: str):
    """(catalogue, sampler) of `database`, read in a read-only transaction (for `doppel anonymise check`)."""
    with connect(server, database) as conn, conn.cursor() as cursor:
        cursor.execute("START TRANSACTION READ ONLY")
        yield read_catalogue(cursor, database), sampler(cursor)
        conn.rollback()


def anonymise(server: Server, database: str, rules: list[Mapping], key: bytes) -> dict[str, int]:
    """Apply the rules to `database` on `server`; rows rewritten per column. DatabaseError names table and column."""
    conn = connect(server, database)
    cursor = conn.cursor()
    triggers: list[tuple[str, str]] = []
    try:
        cursor.execute("SET @doppel_ipad = %s, @doppel_opad = %s", maria_fakes.pads(key))
        _make_functions(cursor)
        catalogue = read_catalogue(cursor, database)
        truncates, groups = plan(catalogue, rules)
        unruled = unruled_personal_columns(catalogue.types, covered(catalogue, truncates, groups), sampler(cursor))
        if unruled:
            raise DatabaseError(f"{', '.join(unruled)} look(s) personal and no anonymise rule covers them; add a "
                                "rule to clone.anonymise (method: keep if it is not personal)")
        rewritten = [g for g, rule in groups.items() if rule["method"] != "keep"]
        tables = sorted({column[1] for group in rewritten for column in group} |
                        {catalogue.column_of(r)[1] for r in truncates})
        triggers = _set_aside_triggers(cursor, database, tables)
        cursor.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        cursor.execute("START TRANSACTION")
        samples = maria_leaks.keep_samples(cursor, database, catalogue, rewritten, groups)
        changed: dict[str, int] = {}
        for rule in truncates:
            table = catalogue.column_of(rule)[1]
            cursor.execute(f"DELETE FROM {q(table)}")
            changed[f"{table}.* (truncate)"] = -1
        for index, group in enumerate(rewritten):
            changed.update(_rewrite_group(cursor, catalogue, group, groups[group], index))
        _check_foreign_keys(cursor, catalogue, set(tables))
        maria_leaks.check_samples(cursor, samples)
        conn.commit()
        cursor.execute("SET SESSION FOREIGN_KEY_CHECKS = 1")
        _put_back_triggers(cursor, triggers)
        triggers = []
        for table in tables:  # no old value left in a page or in the statistics
            cursor.execute(f"OPTIMIZE TABLE {q(table)}")
            cursor.fetchall()
        return changed
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"anonymising MariaDB database {database}: {_safe(exc)}") from None
    finally:
        _finish(conn, cursor, triggers)


def _finish(conn, cursor, triggers: list[tuple[str, str]]) -> None:
    """Roll back what is not committed, make the set-aside triggers again, drop the fakes' functions."""
    try:
        conn.rollback()
        _put_back_triggers(cursor, triggers)
        for name in maria_fakes.NAMES:
            cursor.execute(f"DROP FUNCTION IF EXISTS {name}")
    except pymysql.MySQLError as exc:
        log.warning("could not tidy up after anonymising: %s", _safe(exc))
    finally:
        conn.close()


def _make_functions(cursor) -> None:
    for name in maria_fakes.NAMES:
        cursor.execute(f"DROP FUNCTION IF EXISTS {name}")  # left by an attempt that died
    for statement in maria_fakes.FUNCTIONS:
        cursor.execute(statement)


def _safe(exc: BaseException) -> str:
    """The server's message without the value it quotes (a duplicate or bad value may be a production value)."""
    return re.sub(r"((?:entry|value|value:)) '[^']*'", r"\1 '…'", error_text(exc))


def _set_aside_triggers(cursor, database: str, tables: list[str]) -> list[tuple[str, str]]:
    """Drop the triggers of `tables`; (sql_mode, statement) of each, in the order they fire, to make them again."""
    if not tables:
        return []
    cursor.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND "
                   f"EVENT_OBJECT_TABLE IN ({', '.join(['%s'] * len(tables))}) ORDER BY EVENT_OBJECT_TABLE, "
                   "EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER", (database, *tables))
    saved = []
    for (name,) in cursor.fetchall():
        cursor.execute(f"SHOW CREATE TRIGGER {q(name)}")
        row = cursor.fetchone()
        saved.append((row[1], row[2]))
        cursor.execute(f"DROP TRIGGER {q(name)}")
    return saved


def _put_back_triggers(cursor, triggers: list[tuple[str, str]]) -> None:
    for sql_mode, statement in triggers:
        cursor.execute("SET @doppel_sql_mode = @@SESSION.sql_mode, SESSION sql_mode = %s", (sql_mode,))
        cursor.execute(statement)
        cursor.execute("SET SESSION sql_mode = @doppel_sql_mode")
    triggers.clear()


def _rewrite_group(cursor, catalogue: Catalogue, group: frozenset, rule: Mapping, index: int) -> dict[str, int]:
    """Rewrite every column of one group: null, fixed and sql in place, the other methods through the group's map."""
    method, columns = rule["method"], sorted(group)
    if method in ("null", "fixed", "sql"):
        return {f"{label(c)} ({method})": _rewrite_in_place(cursor, catalogue, c, rule) for c in columns}
    value_map, exact = _value_map(cursor, catalogue, group, rule, index)
    changed = {}
    for column in columns:
        name = f"t.{q(column[2])}"
        on = f"m.k = UNHEX(MD5(CAST({name} AS BINARY)))" if exact else f"{name} = m.orig"
        try:
            changed[f"{label(column)} ({method})"] = cursor.execute(
                f"UPDATE {q(column[1])} t JOIN {value_map} m ON {on} SET {name} = m.fake")
        except pymysql.MySQLError as exc:
            raise DatabaseError(f"anonymising {label(column)} with {method} broke a constraint: {_safe(exc)}") from None
    return changed


def _value_map(cursor, catalogue: Catalogue, group: frozenset, rule: Mapping, index: int) -> tuple[str, bool]:
    """A temporary table of the group's distinct production values and their fakes (`orig`, `h`: its MAC, `fake`),
    each computed once, as pg_anonymise makes it, so the fakes are PostgreSQL's: a value the same bytes as in
    PostgreSQL gets the same fake. A lone column's map is keyed by the value's bytes (`k`), as PostgreSQL tells
    values apart; a foreign-key group's, or a unique column's, by the column's collation, as MariaDB joins and
    indexes them (the first value of a case-insensitively equal set, by bytes, gives the fake). Whether the map
    is keyed by bytes is returned too.
    For a group with a unique column the fakes are collision-free (as the unique index compares them): a fake
    already taken, or equal to any production value, is asked for again (the next attempt); for others, a fake
    equal to its own value is."""
    method, columns = rule["method"], sorted(group)
    first_type = catalogue.types[columns[0]]
    try:
        make = lambda h: maria_fakes.fake(method, "orig", h, first_type, rule)  # noqa: E731
        made = make("h")
    except ValueError as exc:
        raise DatabaseError(f"{label(columns[0])}: {exc}") from None
    unique = any(c in catalogue.unique for c in columns)
    # a unique column holds no two values its collation takes for one: keyed by that, it is keyed by bytes too
    name, declared, exact = f"doppel_map_{index}", catalogue.declared[columns[0]], len(columns) == 1 and not unique
    values = " UNION ALL ".join(f"SELECT {q(c[2])} AS v FROM {q(c[1])} WHERE {q(c[2])} IS NOT NULL" for c in columns)
    cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {name}")
    try:
        if exact:
            cursor.execute(f"CREATE TEMPORARY TABLE {name} (k BINARY(16) NOT NULL PRIMARY KEY, "
                           f"orig {declared} NOT NULL, h BINARY(32), fake {declared})")
            cursor.execute(f"INSERT IGNORE INTO {name} (k, orig) SELECT UNHEX(MD5(CAST(v AS BINARY))), v "
                           f"FROM ({values}) AS u")
        else:
            cursor.execute(f"CREATE TEMPORARY TABLE {name} (orig {declared} NOT NULL PRIMARY KEY, h BINARY(32), "
                           f"fake {declared})")
            cursor.execute(f"INSERT IGNORE INTO {name} (orig) SELECT v FROM ({values}) AS u ORDER BY CAST(v AS BINARY)")
        cursor.execute(f"UPDATE {name} SET h = {maria_fakes.mac(method, 'orig')}")
        cursor.execute(f"UPDATE {name} SET fake = {made}")
        if not unique:  # another attempt only where the fake is its own production value, from the first MAC
            for attempt in range(1, 4):
                cursor.execute(f"UPDATE {name} SET fake = {make(maria_fakes.next_mac('h', attempt))} "
                               "WHERE CAST(fake AS BINARY) = CAST(orig AS BINARY)")
            return name, exact
        for attempt in range(1, _ATTEMPTS + 1):
            if _drop_clashes(cursor, name) == 0:
                return name, exact
            cursor.execute(f"UPDATE {name} SET h = {maria_fakes.next_mac('h', attempt)} WHERE fake IS NULL")
            cursor.execute(f"UPDATE {name} SET fake = {made} WHERE fake IS NULL")
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"anonymising {label(columns[0])} with {method} failed: {_safe(exc)}") from None
    raise DatabaseError(f"{label(columns[0])}: {method} cannot give {len(columns)} column(s) distinct fakes "
                        "(too few possible values for a unique column); choose another method")


def _drop_clashes(cursor, name: str) -> int:
    """Set to NULL the fakes that another value of the map has too (all but the first value, by bytes as
    PostgreSQL orders them) or that equal a production value; how many."""
    cursor.execute("DROP TEMPORARY TABLE IF EXISTS doppel_clash")
    cursor.execute("CREATE TEMPORARY TABLE doppel_clash (orig LONGBLOB NOT NULL, KEY (orig(64)))")
    cursor.execute(f"INSERT INTO doppel_clash SELECT CAST(orig AS BINARY) FROM (SELECT orig, ROW_NUMBER() OVER "
                   f"(PARTITION BY fake ORDER BY CAST(orig AS BINARY)) AS r FROM {name}) AS ranked WHERE r > 1")
    cursor.execute(f"INSERT INTO doppel_clash SELECT CAST(m.orig AS BINARY) FROM {name} m JOIN {name} o "
                   "ON m.fake = o.orig")
    return cursor.execute(f"UPDATE {name} m JOIN (SELECT DISTINCT orig FROM doppel_clash) c "
                          "ON c.orig = CAST(m.orig AS BINARY) SET m.fake = NULL")


def _rewrite_in_place(cursor, catalogue: Catalogue, column: Column, rule: Mapping) -> int:
    method, name = rule["method"], f"t.{q(column[2])}"
    if method == "null":
        value = "NULL"
    elif method == "fixed":  # a literal, as in PostgreSQL: the statement carries no parameters
        value = cursor.connection.escape(rule["value"])
    else:  # sql: `value` in the expression is the production value
        value = "(" + re.sub(r"(?<![\w.`'])value(?![\w`'])", name, rule["expression"]) + ")"
    try:
        return cursor.execute(f"UPDATE {q(column[1])} t SET {name} = {value}")
    except pymysql.MySQLError as exc:
        hint = "; use method hash instead of null" if method == "null" else ""
        raise DatabaseError(f"anonymising {label(column)} with {method} broke a constraint or failed: "
                            f"{_safe(exc)}{hint}") from None


def _check_foreign_keys(cursor, catalogue: Catalogue, tables: set[str]) -> None:
    """Every foreign key from or to a masked table still joins (MariaDB did not check while masking)."""
    for fk in catalogue.foreign_keys:
        if fk.table[1] not in tables and fk.references[1] not in tables:
            continue
        children = [child[2] for child, _ in fk.pairs]
        found = orphans(cursor, fk.table[1], children, fk.references[1], [parent[2] for _, parent in fk.pairs])
        if found:
            columns = ", ".join(label(child) for child, _ in fk.pairs)
            raise DatabaseError(f"after anonymising, foreign key {fk.name} of {columns} no longer joins "
                                f"{fk.references[1]} ({found} row(s)): a rule broke it; rule the referenced columns "
                                "the same way")
