"""What an environment logged, as doppel.yaml describes it: the `logs` component kind and the `logs:` section.

```yaml
productions:
  shop:                                  # local: files the environment writes, by glob
    components:
      - {kind: logs, name: app, paths: ["app/logs/*.log", "var/log/**/*.log"]}
  shop-os:                               # openstack: each server's console log (Nova's console output)
    driver: openstack
    logs:
      - {kind: logs, console: true}
logs:
  retention: 30d                         # how long an environment's logs are kept after it is deleted
```

A `logs` component is not data: snapshots, clones and backups leave it out. Just
before an environment is torn down its logs are collected, secrets masked,
compressed and kept in the backup store for `logs.retention`, whatever the
backups' own retention is.
"""
from __future__ import annotations

import posixpath

from marshmallow import ValidationError, fields, validate

from schemas.base import Identifier, Strict
from schemas.fields import Duration

LOGS_KIND = "logs"
DEFAULT_RETENTION = 30 * 86400.0


def _relative_glob(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a glob relative to the environment's directory (e.g. app/logs/*.log)")
    if value.startswith("/"):
        raise ValidationError(f"{value!r} is absolute; write it relative to the production's path "
                              "(e.g. app/logs/*.log)")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../") or "/../" in f"/{normal}/":
        raise ValidationError(f"{value!r} leaves the environment's directory; keep log paths inside it")
    return normal


class RelativeGlob(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return _relative_glob(super()._deserialize(value, attr, data, **kwargs))


class LogsComponent(Strict):
    """Where an environment writes its logs: files by glob, and (OpenStack) its servers' console logs."""
    kind = fields.String(load_default=LOGS_KIND, validate=validate.Equal(LOGS_KIND))
    name = Identifier(load_default="logs")
    paths = fields.List(RelativeGlob(), load_default=list)
    console = fields.Boolean(load_default=False)


class LogsSection(Strict):
    """`logs:`: how long the logs of a deleted environment are kept (their own retention, not the backups')."""
    retention = Duration(load_default=DEFAULT_RETENTION)


def check_logs(entries: list, driver: str) -> dict:
    """Errors of a production's logs components, by index: what this driver can collect."""
    errors: dict = {}
    names: set[str] = set()
    for index, entry in enumerate(entries):
        if not {"name", "paths", "console"} <= set(entry):
            continue  # its own errors are reported already
        problems = []
        if entry["name"] in names:
            problems.append(f"logs name {entry['name']!r} is used twice; give each logs component its own name")
        names.add(entry["name"])
        if driver == "local" and entry["console"]:
            problems.append("the local driver has no server consoles; list paths: [...] instead")
        if driver in ("openstack", "aws") and entry["paths"]:
            problems.append(f"files on {'OpenStack servers' if driver == 'openstack' else 'EC2 instances'} are not "
                            "collected yet; use console: true (each server's console log)")
        if not entry["paths"] and not entry["console"]:
            problems.append("collects nothing; add paths: [app/logs/*.log]" +
                            (" or console: true" if driver in ("openstack", "aws") else ""))
        if problems:
            errors[index] = problems
    return errors
