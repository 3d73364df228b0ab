"""`doppel anonymise check`: what a production's server database holds that its anonymise rules do not cover.

Read-only, on production, PostgreSQL or MariaDB alike: columns that look personal
(personal.py: by name, and by a sample of values counted inside the server) with no
rule, directly or through a foreign key (rules.py); rules that name a table or
column that is gone; and the schema's drift since the columns were last reviewed
(a column new since then is reported, so it is never silently copied). Only names
and counts leave the server.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from clouds.databases import maria_anonymise, pg_anonymise
from clouds.databases.personal import personal_columns
from clouds.databases.rules import label
from clouds.databases.servers import Server


@dataclass
class CheckReport:
    database: str
    unruled: list[str] = field(default_factory=list)      # "table.column (why)"
    stale_rules: list[str] = field(default_factory=list)  # rules naming what is not there
    new_columns: list[str] = field(default_factory=list)  # since the reviewed list
    gone_columns: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)      # every column now, to record as reviewed

    @property
    def clean(self) -> bool:
        return not (self.unruled or self.stale_rules or self.new_columns)


READERS = {"postgresql": pg_anonymise.reading, "mariadb": maria_anonymise.reading}


def check(server: Server, database: str, rules: Iterable[Mapping], reviewed: Iterable[str] | None) -> CheckReport:
    rules = list(rules)
    report = CheckReport(database)
    with READERS[server.engine](server, database) as (catalogue, sample):
        groups = catalogue.groups()
        covered: set = set()
        for rule in rules:
            column = catalogue.column_of(rule)
            if rule["method"] == "truncate":
                if column[:2] not in catalogue.tables:
                    report.stale_rules.append(f"{rule['table']} (truncate): no such table")
                covered.add(column[:2])
            elif column not in catalogue.types:
                report.stale_rules.append(f"{rule['table']}.{rule.get('column')} ({rule['method']}): no such column")
            else:
                covered |= groups.get(column, {column})
        candidates = {c: t for c, t in catalogue.types.items() if c not in covered and c[:2] not in covered}
        report.unruled = [f"{label(c)} ({why})" for c, why in personal_columns(candidates, sample).items()]
    report.columns = sorted(label(c) for c in catalogue.types)
    if reviewed is not None:
        before = set(reviewed)
        report.new_columns = [c for c in report.columns if c not in before]
        report.gone_columns = sorted(before - set(report.columns))
    return report
