"""A production on OpenStack, as the `openstack` driver reads it from doppel.yaml.

```yaml
productions:
  shop:
    driver: openstack
    cloud: mycloud                      # a cloud in clouds.yaml (OS_CLIENT_CONFIG_FILE honoured)
    region: RegionOne
    stack: shop-prod                    # the existing Heat stack production is; or servers: + volumes:
    template: /etc/doppel/shop-env.yaml # the HOT template environments are made from
    parameters:                         # template parameter: value (placeholders below)
      image: "{snapshot.image.app}"             # the snapshot image of production's server `app`
      data_snapshot: "{snapshot.volume.data}"   # the Cinder snapshot of production's volume `data`
      flavor: m1.small
      db_password: "{secrets.db_password}"      # generated for the environment, never production's
      config_url: "{config_url}"                # where the environment's config bundle is, in Swift
    bundle:                             # the config instances read at boot, rewritten per environment
      app.base_url: "{outputs.base_url}"
      database.password: "{secrets.db_password}"
    clone:
      secrets: [db_password]
      crons: disable                    # checked: every server of the env carries the bundle that says so
      anonymise:                        # run in the env's copy of each database before env.ready
        - {database: orders, table: customers, column: email, method: email}
    logs:                               # kept after the env is deleted (schemas/logs.py)
      - {kind: logs, console: true}     # each server's console log
    databases:                          # copied into each env (anonymised) and backed up, at the address
      - kind: postgresql                # the stack's outputs give; postgresql or mariadb
        name: orders
        database: orders                # or "{outputs.db_name}" when each stack names its own database
        host: "{outputs.db_host}"       # an output of the env's stack (of production's, for production)
        user: doppel_backup             # a role that exists in production, so in every copy of its volume
        password_env: SHOP_BACKUP_PASSWORD
        verify_on: {host: 10.0.0.5, user: doppel, password_env: DOPPEL_PG_PASSWORD}
        owner: {user: "{outputs.db_user}", password: "{secrets.db_password}"}  # optional: the env's login
```

`verify_on` is the server verifications and restores make their scratch
databases on (the environment's own server is gone after its TTL); by default
the database's own server.

Servers and volumes are named by their Heat resource names (with `stack:`) or by
their Nova/Cinder names (with `servers:` / `volumes:`).
"""
from __future__ import annotations

import re
from typing import Mapping

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from schemas.base import ENV_VAR, DatabaseServer, Identifier, Strict, needs
from schemas.clone_policy import AnonymiseRule
from schemas.logs import LogsComponent, check_logs
from schemas.openstack_files import HOST_KEY_PLACEHOLDER, OpenStackFileTree, check_file_trees
from schemas.templates import TemplateError, placeholders

PARAMETER_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
PARAMETER_ROOTS = ("snapshot.image.", "snapshot.volume.", "secrets.", HOST_KEY_PLACEHOLDER)
PARAMETER_BARE = ("config_url", "env", "production")
DATABASE_KINDS = ("postgresql", "mariadb")
DEFAULT_PORTS = {"postgresql": 5432, "mariadb": 3306}


def parameter_placeholders(value) -> list[str]:
    """The placeholders a template parameter's value uses, e.g. ['snapshot.image.app']."""
    return PARAMETER_PLACEHOLDER.findall(value) if isinstance(value, str) else []


class OpenStackClonePolicy(Strict):
    secrets = fields.List(Identifier(), load_default=list)
    crons = fields.String(load_default="disable", validate=validate.OneOf(
        ("disable", "keep"), error="must be disable (the default: copies run no scheduled jobs) or keep"))
    anonymise = fields.List(fields.Nested(AnonymiseRule), load_default=list)  # rules name a `databases:` entry


class DatabaseOwner(Strict):
    """The env's own login on its database (PostgreSQL), made by Doppel after the restore."""
    user = fields.String(required=True, validate=validate.Length(min=1, max=63))  # e.g. "{outputs.db_user}"
    password = fields.String(required=True, validate=validate.Regexp(
        r"^\{secrets\.[A-Za-z_][A-Za-z0-9_]*\}$", error='must be "{{secrets.NAME}}": a password made for each env'))


class OpenStackDatabase(Strict):
    """A database of the production's (and so of each environment's), dumped by its engine's tool."""
    kind = fields.String(required=True, validate=validate.OneOf(
        DATABASE_KINDS, error="must be one of {choices}"))
    name = Identifier(required=True)
    # A name, or {outputs.NAME} when each stack says which database is its own (envs sharing one server)
    database = fields.String(required=True, validate=validate.Length(min=1, max=63))
    host = fields.String(required=True, error_messages=needs('host: "{outputs.db_host}"'))
    port = fields.Integer(validate=validate.Range(min=1, max=65535))  # default: the engine's own
    user = fields.String(required=True, validate=validate.Length(min=1))
    password_env = fields.String(validate=ENV_VAR)
    verify_on = fields.Nested(DatabaseServer)
    owner = fields.Nested(DatabaseOwner)  # the env's own account on its copy (clouds.databases.accounts)

    @validates_schema
    def _host_from_outputs(self, data, **kwargs):
        for key in ("host", "database"):
            try:
                roots = {root for root, _ in placeholders(data.get(key, ""))}
            except TemplateError as exc:
                raise ValidationError(str(exc), key) from None
            if roots - {"outputs"}:
                raise ValidationError("may use only {outputs.NAME} (what the stack's outputs say)", key)

    @post_load
    def _engine_port(self, data, **kwargs):
        data.setdefault("port", DEFAULT_PORTS[data["kind"]])
        return data


class OpenStackProductionSchema(Strict):
    driver = fields.String(required=True, validate=validate.Equal("openstack"))
    cloud = fields.String(required=True, error_messages=needs("cloud: mycloud"))
    region = fields.String(load_default=None)
    stack = fields.String()
    servers = fields.List(fields.String(), load_default=list)
    volumes = fields.List(fields.String(), load_default=list)
    template = fields.String(required=True, error_messages=needs("template: /etc/doppel/shop-env.yaml"))
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)
    bundle = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    domain = fields.String(load_default="localhost")
    stack_timeout_minutes = fields.Integer(load_default=30, validate=validate.Range(min=1, max=1440))
    # A server image or volume snapshot still unfinished after this long fails the chain instead of
    # leaving the environment snapshotting for ever (e.g. a server Nova can no longer snapshot).
    snapshot_timeout_minutes = fields.Integer(load_default=60, validate=validate.Range(min=1, max=1440))
    clone = fields.Nested(OpenStackClonePolicy, load_default=lambda: OpenStackClonePolicy().load({}))
    databases = fields.List(fields.Nested(OpenStackDatabase), load_default=list)
    logs = fields.List(fields.Nested(LogsComponent), load_default=list)  # console: true (schemas/logs.py)
    files = fields.List(fields.Nested(OpenStackFileTree), load_default=list)  # trees on servers, over SSH

    @validates_schema(skip_on_field_errors=True)
    def _coherent(self, data, **kwargs):
        errors: dict = {}
        if not data.get("stack") and not (data.get("servers") or data.get("volumes")):
            errors["stack"] = ["say what production is: stack: <its Heat stack>, or servers: [...] and volumes: [...]"]
        if check_logs(data["logs"], "openstack"):
            errors["logs"] = check_logs(data["logs"], "openstack")
        declared = set(data["clone"]["secrets"])
        for name, value in data["parameters"].items():
            for used in parameter_placeholders(value):
                if not (used in PARAMETER_BARE or used.startswith(PARAMETER_ROOTS)):
                    errors.setdefault("parameters", {})[name] = [
                        f"unknown placeholder {{{used}}}; use {{snapshot.image.SERVER}}, {{snapshot.volume.VOLUME}}, "
                        "{secrets.NAME}, {host_key.TREE}, {config_url}, {env} or {production}"]
                elif used.startswith("secrets.") and used[len("secrets."):] not in declared:
                    errors.setdefault("parameters", {})[name] = [
                        f"uses {used}, which is not declared; add it to clone.secrets"]
        for key, value in data["bundle"].items():
            try:
                for root, name in placeholders(value):
                    if root == "secrets" and name not in declared:
                        errors.setdefault("bundle", {})[key] = [f"uses secrets.{name}, which is not declared; "
                                                                "add it to clone.secrets"]
            except TemplateError as exc:
                errors.setdefault("bundle", {})[key] = [str(exc)]
        for key, found in check_file_trees(data["files"], data["parameters"]).items():
            errors.setdefault(key, {}).update(found)
        errors.update(check_databases(data))  # keys of their own: databases, clone
        if errors:
            raise ValidationError(errors)


def check_databases(data: Mapping) -> dict:
    """Errors of a production's `databases:` and the anonymise rules that name them (any cloud driver)."""
    errors: dict = {}
    names = {database["name"] for database in data["databases"]}
    if len(names) < len(data["databases"]):
        return {"databases": ["two entries have the same name; give each database its own name"]}
    for index, database in enumerate(data["databases"]):
        owner = database.get("owner")
        if owner and database["kind"] != "postgresql":
            errors.setdefault("databases", {})[index] = {"owner": ["an account of the env's own is made on "
                                                                   "PostgreSQL only; leave it out"]}
        elif owner and owner["password"][len("{secrets."):-1] not in data["clone"]["secrets"]:
            errors.setdefault("databases", {})[index] = {"owner": {"password": [
                f"uses {owner['password']}, which is not declared; add it to clone.secrets"]}}
    for index, rule in enumerate(data["clone"]["anonymise"]):
        if rule["database"] not in names:
            errors.setdefault("clone", {}).setdefault("anonymise", {})[index] = {"database": [
                f"{rule['database']!r} is not in databases: (its names: {', '.join(sorted(names)) or 'none'}); "
                "name the entry the rule is for"]}
    return errors


def is_openstack(entry: Mapping) -> bool:
    """Whether a productions entry is run by the openstack driver."""
    return isinstance(entry, Mapping) and entry.get("driver") == "openstack"
