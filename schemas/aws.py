"""A production on AWS, as the `aws` driver reads it from doppel.yaml.

```yaml
productions:
  shop:
    driver: aws
    region: eu-west-1                   # credentials: boto3's chain (environment, profile, instance role)
    profile: shop-ops                   # optional: a profile of ~/.aws/config; never keys in doppel.yaml
    stack: shop-prod                    # the CloudFormation stack production is (its instances and RDS
                                        # instances are found in it by logical id)
    template: /etc/doppel/shop-env.yaml # the CloudFormation template environments are made from (JSON or YAML)
    parameters:                         # template parameter: value (placeholders below)
      WebImage: "{snapshot.image.Web}"        # the AMI taken of production's instance `Web`
      DbSnapshot: "{snapshot.db.Database}"    # the RDS snapshot of production's DB instance `Database`
      DbPassword: "{secrets.db_password}"     # generated for the environment, never production's
      EnvName: "{env}"
    clone:
      secrets: [db_password]
      anonymise:                        # run in the env's copy of each database before env.ready
        - {database: orders, table: customers, column: email, method: email}
    logs:                               # kept after the env is deleted (schemas/logs.py)
      - {kind: logs, console: true}     # each instance's console output
    databases:                          # dumped at snapshot, restored into each env (anonymised), backed up
      - kind: postgresql                # postgresql or mariadb, as on openstack (schemas/openstack.py)
        name: orders
        database: "{outputs.db_name}"   # where the stack's outputs say (production's, or the env's)
        host: "{outputs.db_host}"
        user: doppel_backup             # a role production's database has, so every copy has it too
        password_env: SHOP_BACKUP_PASSWORD
        owner: {user: "{outputs.db_user}", password: "{secrets.db_password}"}  # optional: the env's login
    bucket: doppel-envs                 # where the dumps wait until configure
```

The dumps wait in the S3 bucket `bucket:` (default doppel-envs, in the production's region; made when
missing), under `<env>/`, until configure restores them; teardown deletes what is left there.
"""
from __future__ import annotations

from typing import Mapping

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.base import Strict, needs
from schemas.logs import LogsComponent, check_logs
from schemas.openstack import OpenStackClonePolicy, OpenStackDatabase, check_databases, parameter_placeholders

AWS_PARAMETER_ROOTS = ("snapshot.image.", "snapshot.db.", "secrets.")
AWS_PARAMETER_BARE = ("env", "production")


class AwsProductionSchema(Strict):
    driver = fields.String(required=True, validate=validate.Equal("aws"))
    region = fields.String(required=True, error_messages=needs("region: eu-west-1"))
    profile = fields.String(load_default=None)
    stack = fields.String(required=True, error_messages=needs("stack: <production's CloudFormation stack>"))
    template = fields.String(required=True, error_messages=needs("template: /etc/doppel/shop-env.yaml"))
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    domain = fields.String(load_default="localhost")
    stack_timeout_minutes = fields.Integer(load_default=30, validate=validate.Range(min=1, max=1440))
    snapshot_timeout_minutes = fields.Integer(load_default=60, validate=validate.Range(min=1, max=1440))
    clone = fields.Nested(OpenStackClonePolicy, load_default=lambda: OpenStackClonePolicy().load({}))
    logs = fields.List(fields.Nested(LogsComponent), load_default=list)  # console: true (schemas/logs.py)
    databases = fields.List(fields.Nested(OpenStackDatabase), load_default=list)  # the same entries as openstack's
    bucket = fields.String(load_default="doppel-envs", validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", error="must be an S3 bucket name (a-z, 0-9, dots and hyphens)"))

    @validates_schema(skip_on_field_errors=True)
    def _coherent(self, data, **kwargs):
        errors: dict = {}
        declared = set(data["clone"]["secrets"])
        for name, value in data["parameters"].items():
            for used in parameter_placeholders(value):
                if not (used in AWS_PARAMETER_BARE or used.startswith(AWS_PARAMETER_ROOTS)):
                    errors[name] = [f"unknown placeholder {{{used}}}; use {{snapshot.image.INSTANCE}}, "
                                    "{snapshot.db.DB_INSTANCE}, {secrets.NAME}, {env} or {production}"]
                elif used.startswith("secrets.") and used[len("secrets."):] not in declared:
                    errors[name] = [f"uses {used}, which is not declared; add it to clone.secrets"]
        problems = {"parameters": errors} if errors else {}
        problems.update(check_databases(data))
        if check_logs(data["logs"], "aws"):
            problems["logs"] = check_logs(data["logs"], "aws")
        if problems:
            raise ValidationError(problems)


def is_aws(entry: Mapping) -> bool:
    """Whether a productions entry is run by the aws driver."""
    return isinstance(entry, Mapping) and entry.get("driver") == "aws"
