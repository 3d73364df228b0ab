"""The `productions:` section of doppel.yaml: what a production is made of, and how a clone of it is made safe.

```yaml
productions:
  shop:
    driver: local
    path: /srv/shop
    base_url: https://shop.example.com
    domain: example.com                 # envs get http://<env>.example.com
    components:
      - {kind: files, path: app, exclude: ["*.log", "cache/*"]}
      - {kind: sqlite, path: data/shop.db, name: main}
      - {kind: config, path: config/app.ini}      # format from the name, or format: ini|env|yaml|json|php
      - {kind: crontab, path: crontab}
      - {kind: logs, name: app, paths: ["app/logs/*.log"]}   # kept after the env is deleted (schemas/logs.py)
      - {kind: postgresql, name: orders, host: 127.0.0.1, port: 5432, database: orders, user: shop,
         password_env: SHOP_PG_PASSWORD,                 # the password is read from this variable, never the file
         clones: {host: 127.0.0.1, user: doppel, password_env: DOPPEL_PG_PASSWORD}}   # where env databases go
      - {kind: postgresql, name: events, port: 5433, database: events, user: doppel_backup,
         data_directory: /var/lib/postgresql/15/events}  # on this host: each env a server of its own (thin)
    clone:
      rewrite:
        - {file: config/app.ini, key: database.path, value: "{outputs.db_main_path}"}
        - {file: .env, key: DB_PASSWORD, value: "{secrets.db_password}"}
      secrets: [db_password]                # generated per environment, never production's
      crons: disable                        # disable | keep
      anonymise:
        - {database: main, table: customers, column: email, method: email}
        - {database: main, table: audit_log, method: truncate}
        - {database: orders, table: payments, column: card, method: digits, check: luhn}
      isolate: true                         # refuse a clone whose config still names production
```

Loading is idempotent (a loaded section loads again to itself), and every error
message names the key and says what to write instead. Component kinds are a
registry (`KIND_SCHEMAS`): file kinds carry a `path` inside the production's
directory; server databases (postgresql, mariadb) name a server, a database and a
user instead, and where the environments' own databases are made (`clones`).
"""
from __future__ import annotations

import difflib
import posixpath
import re
from typing import Mapping

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from schemas.base import DatabaseServer, Identifier, ProductionConfigError, RelativePath, Strict, needs
from schemas.clone_policy import ClonePolicy
from schemas.logs import LOGS_KIND, LogsComponent, check_logs
from schemas.templates import TemplateError, placeholders
from schemas.vocabulary import CONFIG_FORMATS, SQLITE_METHODS, detect_format

DRIVERS = ("local", "openstack", "aws")  # the drivers that exist; a production naming another is refused
PRODUCTION_NAME = validate.Regexp(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$",
                                  error="must be 2-40 characters of lower-case letters, digits and '-', "
                                        "starting with a letter (e.g. shop)")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")

# The outputs every local stack has, besides db_<name>_path and db_<name>_url per database.
LOCAL_OUTPUTS = ("env", "root", "base_url", "dns_name")


# --- components ----------------------------------------------------------------------

class Component(Strict):
    kind = fields.String(required=True, error_messages=needs("kind: files"))
    path = RelativePath(required=True, error_messages=needs("path: data/shop.db"))
    name = Identifier()


class ServerDatabaseComponent(DatabaseServer):
    """A database on a PostgreSQL or MariaDB server; environments get a database of their own on `clones`."""
    kind = fields.String(required=True)
    name = Identifier()
    database = fields.String(required=True, validate=validate.Length(min=1, max=63),
                             error_messages=needs("database: shop"))
    clones = fields.Nested(DatabaseServer)  # default: the production's own server, as the same user
    # PostgreSQL on this host: its data directory, so an env gets a server instance of its own on a copy-on-write
    # copy of it (clouds.local.pg_thin); `instances_dir` is where those live (default: the state directory's)
    data_directory = fields.String(validate=validate.Length(min=2))
    instances_dir = fields.String(validate=validate.Length(min=2))

    @validates_schema
    def _local_data_directory(self, data, **kwargs):
        for key in ("data_directory", "instances_dir"):
            if key in data and not posixpath.isabs(data[key]):
                raise ValidationError({key: [f"must be an absolute path (e.g. /var/lib/postgresql/15/main), not "
                                             f"{data[key]!r}"]})
        if "data_directory" not in data:
            return
        if data.get("kind") != "postgresql":
            raise ValidationError({"data_directory": ["only a postgresql component is cloned from its data "
                                                      "directory; remove it"]})
        if "socket" not in data and data.get("host", "127.0.0.1") not in ("127.0.0.1", "localhost", "::1"):
            raise ValidationError({"data_directory": [f"the server at {data['host']} is not on this host, so its "
                                                      "data directory cannot be copied here; remove data_directory "
                                                      "(the database is then copied on its server)"]})


class FilesComponent(Component):
    """A directory (or one file) of application files, copied as they are."""
    exclude = fields.List(fields.String(), load_default=list)  # glob patterns relative to `path`


class SqliteComponent(Component):
    """A SQLite database, captured with SQLite's online backup API."""


class ConfigComponent(Component):
    """A config file the clone policy may rewrite."""
    format = fields.String(validate=validate.OneOf(CONFIG_FORMATS, error="must be one of {choices}"))


class CrontabComponent(Component):
    """A crontab file, or a cron.d-style directory of them."""


KIND_SCHEMAS: dict[str, type[Strict]] = {
    "files": FilesComponent,
    "sqlite": SqliteComponent,
    "config": ConfigComponent,
    "crontab": CrontabComponent,
    "postgresql": ServerDatabaseComponent,
    "mariadb": ServerDatabaseComponent,
    LOGS_KIND: LogsComponent,  # what the env writes: collected before teardown, never snapshotted (schemas/logs.py)
}
SERVER_KINDS = ("postgresql", "mariadb")  # databases on a server: no path, a database of their own per env
DATABASE_KINDS = ("sqlite",) + SERVER_KINDS  # kinds that hold rows: anonymise rules and db_* outputs refer to them
DEFAULT_PORTS = {"postgresql": 5432, "mariadb": 3306}


class ComponentField(fields.Field):
    """One component, validated by the schema of its `kind`."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, Mapping):
            raise ValidationError("must be a mapping such as {kind: files, path: app}")
        kind = value.get("kind")
        if kind not in KIND_SCHEMAS:
            raise ValidationError({"kind": [f"{kind!r} is not a component kind; use one of "
                                            f"{', '.join(KIND_SCHEMAS)}"]})
        loaded = KIND_SCHEMAS[kind]().load(value)
        if kind == LOGS_KIND:
            return loaded
        if kind in SERVER_KINDS:
            return _server_defaults(loaded)
        loaded.setdefault("name", _default_name(loaded))
        if kind == "config" and not loaded.get("format"):
            guessed = detect_format(loaded["path"])
            if guessed is None:
                raise ValidationError({"format": [f"cannot tell the format of {loaded['path']} from its name; "
                                                  f"add format: one of {', '.join(CONFIG_FORMATS)}"]})
            loaded["format"] = guessed
        return loaded

    def _serialize(self, value, attr, obj, **kwargs):
        return value


def _server_defaults(component: dict) -> dict:
    """A server database's name (from its database's), port, and clone server (its own) filled in."""
    if "name" not in component:
        name = re.sub(r"[^a-z0-9_]", "_", component["database"].lower()).strip("_") or component["kind"]
        component["name"] = (name if name[0].isalpha() else f"db_{name}")[:63]
    if "socket" not in component:
        component.setdefault("port", DEFAULT_PORTS[component["kind"]])
    clones = component.get("clones") or {key: component[key] for key in ("host", "port", "socket", "user",
                                                                         "password_env") if key in component}
    if "socket" not in clones:
        clones.setdefault("port", DEFAULT_PORTS[component["kind"]])
    component["clones"] = clones
    return component


def _default_name(component: Mapping) -> str:
    """A component's name when none is given: the file's stem, made into an identifier."""
    stem = posixpath.basename(component["path"]).lstrip(".").split(".")[0] or component["kind"]
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower()).strip("_") or component["kind"]
    return name if name[0].isalpha() else f"{component['kind']}_{name}"


# --- a production ----------------------------------------------------------------------

class ProductionSchema(Strict):
    driver = fields.String(load_default="local", validate=validate.OneOf(
        DRIVERS, error="there is no {input} driver; Doppel has these: {choices}"))
    path = fields.String()
    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                          error_messages={"invalid": "must be a URL such as https://shop.example.com",
                                          **needs("base_url: https://shop.example.com")})
    domain = fields.String(load_default="localhost")
    components = fields.List(
        ComponentField(), required=True, error_messages=needs("components: [{kind: files, path: app}]"),
        validate=validate.Length(min=1, error="list at least one component, e.g. {{kind: files, path: app}}"))
    clone = fields.Nested(ClonePolicy, load_default=lambda: ClonePolicy().load({}))
    # The logs components, moved here from `components` once loaded (so a loaded entry loads again to itself).
    logs = fields.List(fields.Nested(LogsComponent), load_default=list)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _coherent(self, data, original_data, **kwargs):
        if not isinstance(original_data, Mapping):
            return  # already reported as "must be a mapping"
        errors: dict = {}
        _check_path(data, errors)
        _check_domain(data, errors)
        components = data.get("components") or []
        if not _all_loaded(components, original_data.get("components")):
            components = []  # their own errors come first; cross-checks need them whole
        logs = [c for c in components if c["kind"] == LOGS_KIND] + list(data.get("logs") or [])
        components = [c for c in components if c["kind"] != LOGS_KIND]
        if logs and not components and "components" in data:
            errors["components"] = ["list at least one component besides logs, e.g. {kind: files, path: app}"]
        if check_logs(logs, data.get("driver", "local")):
            errors["logs"] = check_logs(logs, data.get("driver", "local"))
        _check_components(components, errors)
        if "clone" in data and components:
            clone_errors = _check_clone(data, components)
            if clone_errors:
                errors["clone"] = clone_errors
        if errors:
            raise ValidationError(errors)

    @post_load
    def _fill_rewrite_formats(self, data, **kwargs):
        """Every rewrite rule says its format once loaded, so no reader has to guess again; logs components
        move to `logs` (snapshots, clones and backups never carry them)."""
        data["logs"] = list(data.get("logs") or []) + [c for c in data["components"] if c["kind"] == LOGS_KIND]
        data["components"] = [c for c in data["components"] if c["kind"] != LOGS_KIND]
        for rule in data["clone"]["rewrite"]:
            rule["format"] = rewrite_format(rule, data["components"])
        return data


def _all_loaded(components: list, original) -> bool:
    """Whether every component listed loaded without error (marshmallow keeps partial ones too)."""
    return isinstance(original, list) and len(components) == len(original) and all(
        isinstance(c, Mapping) and {"kind", "name"} <= c.keys()
        and ("path" in c or c["kind"] in SERVER_KINDS or c["kind"] == LOGS_KIND)
        for c in components)


def _check_path(data: Mapping, errors: dict) -> None:
    path = data.get("path")
    if data.get("driver", "local") == "local":
        if not path:
            errors["path"] = ["the local driver needs the production directory, e.g. path: /srv/shop"]
        elif not path.startswith("/"):
            errors["path"] = [f"{path!r} must be absolute, e.g. /srv/shop"]


def _check_domain(data: Mapping, errors: dict) -> None:
    domain = data.get("domain")
    if domain is not None and not _HOSTNAME.match(domain):
        errors["domain"] = [f"{domain!r} is not a DNS domain; write e.g. example.com (envs become "
                            "http://<env>.example.com)"]


def _check_components(components: list, errors: dict) -> None:
    seen_paths: dict[str, int] = {}
    seen_databases: dict[str, int] = {}
    for index, component in enumerate(components):
        if "path" not in component:
            pass  # a server database: its name is checked below
        elif component["path"] in seen_paths:
            errors.setdefault("components", {})[index] = {
                "path": [f"{component['path']} is already component {seen_paths[component['path']]}; list it once"]}
        if "path" in component:
            seen_paths.setdefault(component["path"], index)
        if component["kind"] in DATABASE_KINDS:
            name = component["name"]
            if name in seen_databases:
                errors.setdefault("components", {})[index] = {
                    "name": [f"database name {name!r} is taken by component {seen_databases[name]}; "
                             "give each database its own name"]}
            seen_databases.setdefault(name, index)


def database_outputs(name: str) -> tuple[str, str]:
    """The stack outputs a SQLite database component gives: its path and its URL."""
    return f"db_{name}_path", f"db_{name}_url"


def server_database_outputs(name: str) -> tuple[str, ...]:
    """The stack outputs a server database gives: the env's own database, where it is, and a URL (no password)."""
    return tuple(f"db_{name}_{part}" for part in ("host", "port", "database", "user", "url"))


def expected_outputs(production: Mapping) -> set[str]:
    """The outputs a local stack of this production will have (what {outputs.*} may name)."""
    names = set(LOCAL_OUTPUTS)
    for component in production.get("components", ()):
        if component["kind"] in SERVER_KINDS:
            names.update(server_database_outputs(component["name"]))
            if component.get("data_directory"):  # an instance of its own: the env role's fresh password is here
                names.add(f"db_{component['name']}_password_file")
        elif component["kind"] in DATABASE_KINDS:
            names.update(database_outputs(component["name"]))
    return names


def _covered(path: str, components: list) -> Mapping | None:
    """The file-carrying component a clone gets `path` through, or None."""
    for component in components:
        if component["kind"] in DATABASE_KINDS:
            continue
        root = component["path"]
        if path == root or root == "." or path.startswith(root.rstrip("/") + "/"):
            return component
    return None


def _check_clone(data: Mapping, components: list) -> dict:
    clone = data["clone"]
    errors: dict = {}
    outputs = expected_outputs(data) if data.get("driver", "local") == "local" else None
    for index, rule in enumerate(clone.get("rewrite", ())):
        if not isinstance(rule, Mapping) or not {"file", "key"} <= rule.keys():
            continue  # the rule's own errors are reported already
        problems = _check_rewrite(rule, components, outputs)
        if problems:
            errors.setdefault("rewrite", {})[index] = problems
    databases = {c["name"]: c["kind"] for c in components if c["kind"] in DATABASE_KINDS}
    for index, rule in enumerate(clone.get("anonymise", ())):
        if not isinstance(rule, Mapping) or "database" not in rule:
            continue
        if rule["database"] not in databases:
            known = ", ".join(databases) or "none; add {kind: sqlite, path: ..., name: ...}"
            errors.setdefault("anonymise", {})[index] = {
                "database": [f"{rule['database']!r} is not a database of this production; its databases: {known}"]}
        elif databases[rule["database"]] == "sqlite" and rule.get("method") not in SQLITE_METHODS:
            errors.setdefault("anonymise", {})[index] = {
                "method": [f"SQLite databases take {', '.join(SQLITE_METHODS)}; {rule.get('method')} needs a "
                           "postgresql or mariadb database"]}
    return errors


def rewrite_format(rule: Mapping, components: list) -> str | None:
    """The format a rewrite rule edits its file in: its own, its config component's, or its name's."""
    if rule.get("format"):
        return rule["format"]
    for component in components:
        if component["kind"] == "config" and component["path"] == rule["file"]:
            return component["format"]
    return detect_format(rule["file"])


def _check_rewrite(rule: dict, components: list, outputs: set[str] | None) -> dict:
    """Problems with one rewrite rule, by field."""
    problems: dict = {}
    carrier = _covered(rule["file"], components)
    if carrier is None:
        problems["file"] = [f"{rule['file']} is in no component, so the clone will not have it; add "
                            f"{{kind: config, path: {rule['file']}}} to components"]
    if not rewrite_format(rule, components):
        problems["format"] = [f"cannot tell the format of {rule['file']} from its name; add format: one of "
                              f"{', '.join(CONFIG_FORMATS)}"]
    try:
        used = placeholders(rule.get("value"))
    except TemplateError:
        used = []  # reported by the rule itself
    if outputs is not None:
        for root, name in used:
            if root == "outputs" and name not in outputs:
                close = difflib.get_close_matches(name, sorted(outputs), n=1)
                hint = f"did you mean outputs.{close[0]}?" if close else f"outputs are: {', '.join(sorted(outputs))}"
                problems["value"] = [f"outputs.{name} is not an output of this production's stacks; {hint}"]
    return problems


class ProductionEntry(fields.Field):
    """One production, validated by the schema of its `driver` (local unless it says otherwise)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, Mapping) and value.get("driver") == "openstack":
            from schemas.openstack import OpenStackProductionSchema  # the openstack driver's own shape
            return OpenStackProductionSchema().load(value)
        if isinstance(value, Mapping) and value.get("driver") == "aws":
            from schemas.aws import AwsProductionSchema  # the aws driver's own shape
            return AwsProductionSchema().load(value)
        return ProductionSchema().load(value)

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class ProductionsSchema(Strict):
    productions = fields.Dict(keys=fields.String(validate=PRODUCTION_NAME),
                              values=ProductionEntry(), load_default=dict)


def load_productions(section: Mapping | None) -> dict[str, dict]:
    """The `productions:` mapping validated and with defaults filled; ProductionConfigError otherwise."""
    try:
        return ProductionsSchema().load({"productions": dict(section or {})})["productions"]
    except ValidationError as exc:
        messages = exc.messages.get("productions", exc.messages) if isinstance(exc.messages, dict) else exc.messages
        raise ProductionConfigError(messages) from None


def load_production(name: str, entry: Mapping) -> dict:
    """One production entry, validated; errors are prefixed with `productions.<name>`."""
    return load_productions({name: entry})[name]
