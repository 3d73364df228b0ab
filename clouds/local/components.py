"""What each kind of production component means to the local driver: how to capture it, what it outputs.

A registry by kind. File kinds (files, config, crontab, sqlite) live in the
production's directory and are captured into the snapshot's; server databases
(postgresql, mariadb: server_databases.py, `on_server`) are copied on their server
into a database of the snapshot's own (a PostgreSQL production on this host that
names its data directory: into a server instance of its own, pg_thin.py), and give their own outputs (the env's
database and where it is) and anonymise with their own SQL.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Callable, Iterable, Mapping

from clouds.local.copying import copy_tree, tree_size
from clouds.local.pg_thin import POSTGRESQL_INSTANCE
from clouds.local.server_databases import MARIADB, POSTGRESQL, ServerDatabaseKind
from clouds.local.sqlite import SIDE_SUFFIXES, anonymise_database, capture_database
from clouds.rewrite.anonymise import Pseudonyms
from schemas.production import database_outputs

Exclude = Callable[[str], bool]  # relative posix path (from the production root) -> leave it out


class ComponentKind:
    """A file-carrying component: captured by copying, nothing to anonymise."""
    kind = ""
    holds_data = False  # True for databases: anonymise rules and db_* outputs refer to them
    on_server = False   # True for databases on a server (server_databases.py): no path in the production

    def capture(self, component: Mapping, source_root: Path, target_root: Path, exclude: Exclude) -> int:
        """Copy the component from a production root into a snapshot root, at the same relative path; bytes."""
        relative = component["path"]
        patterns = tuple(component.get("exclude", ()))

        def leave_out(inner: str) -> bool:
            full = inner if relative == "." else f"{relative}/{inner}"
            return exclude(full) or any(fnmatch.fnmatch(inner, pattern) for pattern in patterns)

        source = source_root / relative
        if not source.exists() and not source.is_symlink():
            raise FileNotFoundError(f"{relative} is missing from the production directory {source_root}")
        return copy_tree(source, target_root / relative, exclude=leave_out).bytes

    def outputs(self, component: Mapping, env_root: Path, env: str) -> dict:
        return {}

    def own_files(self, component: Mapping) -> tuple[str, ...]:
        """Paths (relative to the root) that only this component may write: never copied as plain files."""
        return ()

    def anonymise(self, component: Mapping, env_root: Path, rules: list[Mapping], pseudonyms: Pseudonyms) -> dict:
        raise NotImplementedError(f"{self.kind} components hold no rows to anonymise")

    def size(self, component: Mapping, root: Path) -> int:
        return tree_size(root / component["path"])


class FilesKind(ComponentKind):
    kind = "files"


class ConfigKind(ComponentKind):
    kind = "config"


class CrontabKind(ComponentKind):
    kind = "crontab"


class SqliteKind(ComponentKind):
    """A SQLite database file: a consistent copy in (a reflink, or the online backup), file path and URL out,
    UPDATEs to anonymise."""
    kind = "sqlite"
    holds_data = True

    def capture(self, component: Mapping, source_root: Path, target_root: Path, exclude: Exclude) -> int:
        target = target_root / component["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        return capture_database(source_root / component["path"], target)

    def outputs(self, component: Mapping, env_root: Path, env: str) -> dict:
        path_key, url_key = database_outputs(component["name"])
        path = (env_root / component["path"]).resolve()
        return {path_key: str(path), url_key: f"sqlite:///{path}"}

    def own_files(self, component: Mapping) -> tuple[str, ...]:
        return (component["path"],) + tuple(component["path"] + suffix for suffix in SIDE_SUFFIXES)

    def anonymise(self, component: Mapping, env_root: Path, rules: list[Mapping], pseudonyms: Pseudonyms) -> dict:
        return anonymise_database(env_root / component["path"], rules, pseudonyms)


KINDS: dict[str, ComponentKind | ServerDatabaseKind] = {}


def register(kind):
    """Make a component kind known to the local driver (a later database kind registers here)."""
    KINDS[kind.kind] = kind
    return kind


for _kind in (FilesKind(), ConfigKind(), CrontabKind(), SqliteKind(), POSTGRESQL, MARIADB):
    register(_kind)


def kind_of(component: Mapping):
    if component.get("kind") == "postgresql" and component.get("data_directory"):
        return POSTGRESQL_INSTANCE  # on this host: an instance of its own per env (clouds.local.pg_thin)
    try:
        return KINDS[component["kind"]]
    except KeyError:
        raise LookupError(f"the local driver cannot handle {component['kind']!r} components (it knows "
                          f"{', '.join(sorted(KINDS))})") from None


def copy_roots(components: Iterable[Mapping]) -> list[Mapping]:
    """The file-carrying components to copy: one nested inside another is copied with it, not twice."""
    carriers = [c for c in components if not kind_of(c).holds_data]
    roots = []
    for component in carriers:
        path = component["path"]
        inside_other = any(
            other is not component and other["path"] != path and
            (other["path"] == "." or path.startswith(other["path"].rstrip("/") + "/"))
            for other in carriers)
        if not inside_other:
            roots.append(component)
    return roots
