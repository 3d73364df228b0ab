"""What anonymise rules mean for a database's columns, whatever its engine: foreign-key groups and one rule each.

Columns joined by a foreign key (single or composite, self-references too) form a
group, found by union-find over each key's column pairs. A rule on any column of a
group applies to all of it, so every join that held in production holds in the
clone; two different rules in one group are refused, naming both columns. The
engines' anonymisers (pg_anonymise.py, maria_anonymise.py) and `doppel anonymise
check` (coverage.py) read their catalogues into this shape and plan from it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from clouds.databases.servers import DatabaseError

Column = tuple[str, str, str]  # schema, table, column; the schema is "" for MariaDB (the database is the schema)


@dataclass
class ForeignKey:
    name: str
    table: tuple[str, str]
    references: tuple[str, str]
    definition: str = ""
    pairs: list[tuple[Column, Column]] = field(default_factory=list)


@dataclass
class Catalogue:
    """What a database's catalogue says: columns and their types, foreign keys, columns in a unique key."""
    types: dict[Column, str] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    unique: set[Column] = field(default_factory=set)
    not_null: set[Column] = field(default_factory=set)
    default_schema: str = "public"
    declared: dict[Column, str] = field(default_factory=dict)  # the full type as declared, where the engine needs it

    @property
    def tables(self) -> set[tuple[str, str]]:
        return {(schema, table) for schema, table, _ in self.types}

    def groups(self) -> dict[Column, frozenset[Column]]:
        """Each column joined by a foreign key -> every column it is joined with (itself included)."""
        parent: dict[Column, Column] = {}

        def find(column: Column) -> Column:
            while parent.setdefault(column, column) != column:
                parent[column] = parent[parent[column]]
                column = parent[column]
            return column

        for key in self.foreign_keys:
            for child, referenced in key.pairs:
                parent[find(child)] = find(referenced)
        members: dict[Column, set[Column]] = {}
        for column in parent:
            members.setdefault(find(column), set()).add(column)
        return {column: frozenset(members[find(column)]) for column in parent}

    def column_of(self, rule: Mapping) -> Column:
        return column_of(rule, self.default_schema)


def column_of(rule: Mapping, default_schema: str = "public") -> Column:
    schema, _, table = rule["table"].rpartition(".")
    return (schema or default_schema, table, rule.get("column") or "")


def label(column: Column) -> str:
    """table.column, with the schema only when it is not the default one."""
    return f"{column[1] if column[0] in ('public', '') else column[0] + '.' + column[1]}.{column[2]}"


def plan(catalogue: Catalogue, rules: Iterable[Mapping]) -> tuple[list[Mapping], dict[frozenset, Mapping]]:
    """The table-wide rules (truncate), and each group of columns with the one rule that rewrites it."""
    groups = catalogue.groups()
    truncates, by_group, ruled_by = [], {}, {}
    for rule in rules:
        column = catalogue.column_of(rule)
        if (column[0], column[1]) not in catalogue.tables:
            raise DatabaseError(f"there is no table {rule['table']!r} to anonymise; fix clone.anonymise in "
                                "doppel.yaml (names are case-sensitive)")
        if rule["method"] == "truncate":
            truncates.append(rule)
            continue
        if column not in catalogue.types:
            have = ", ".join(c for s, t, c in catalogue.types if (s, t) == column[:2])
            raise DatabaseError(f"table {rule['table']} has no column {column[2]!r} (it has: {have}); fix "
                                "clone.anonymise in doppel.yaml")
        group = groups.get(column, frozenset([column]))
        earlier = ruled_by.get(group)
        if earlier is not None and _rule_key(earlier[1]) != _rule_key(rule):
            raise DatabaseError(f"{label(column)} ({rule['method']}) and {label(earlier[0])} "
                                f"({earlier[1]['method']}) are joined by a foreign key, so they must be masked "
                                "the same way; give them one rule")
        ruled_by[group] = (column, rule)
        by_group[group] = rule
    return truncates, by_group


def covered(catalogue: Catalogue, truncates: Iterable[Mapping], groups: Iterable[frozenset]) -> set:
    """Columns a rule reaches (through its foreign-key group), and tables a truncate empties."""
    return {column for group in groups for column in group} | {catalogue.column_of(r)[:2] for r in truncates}


def _rule_key(rule: Mapping) -> tuple:
    method = "full_name" if rule["method"] == "name" else rule["method"]
    return (method, rule.get("value"), rule.get("days"), rule.get("check"), rule.get("expression"))
