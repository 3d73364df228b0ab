"""Environments on AWS: the CloudFormation stack doppel-<env>, from the production's template.

The stack carries Doppel's tags (CloudFormation hands them on to what it makes), and its
ClientRequestToken is derived from the request's idempotency key, so a replayed create is the
same create. It is made with OnFailure=DO_NOTHING: a failed stack stays readable, its events
say why, and the chain's compensation deletes it. The environment's credentials are generated
into the parameters that name `{secrets.NAME}` when the stack is made, so `configure` only reads
the outputs.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from clouds.aws import api
from core import secrets as masking
from core.cloud import (
    CREATE_COMPLETE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    DELETE_IN_PROGRESS,
    TAG_PRODUCTION,
    TAG_SNAPSHOT,
    DriverError,
    Snapshot,
    Stack,
    configurable_stack,
    env_tags,
    existing_stack,
    fill_parameters,
    require_complete,
)

log = logging.getLogger(__name__)


def stack_name(env: str) -> str:
    return f"doppel-{env}"


class StackVerbs:
    """The stack verbs of `AwsDriver` (clouds.aws.driver), which gives them `_spec`, `_clients`, `_all_clients`,
    `snapshot_status`, what its backups wrote (`discard_backup_source`) and its databases (`_restore_databases`,
    `_drop_databases`)."""

    def create_stack(self, env: str, snapshot: Snapshot, parameters: dict, key: str) -> Stack:
        """Start the stack doppel-<env> from the production's template; a replay returns the same stack."""
        spec = self._spec(snapshot.production, env)
        clients = self._clients(spec)
        found = self._stack(clients, env)
        if existing_stack(found, env, key) is not None:
            return found
        current = require_complete(self.snapshot_status(snapshot.id), env)
        generated = self._env_secrets(spec, env)  # fresh; kept for its database accounts (clouds.aws.databases)
        masking.remember(generated.values())  # this process's logs mask them (botocore logs what it sends)
        values = render(spec["parameters"] | (parameters or {}), env=env, production=snapshot.production,
                        parts={f"snapshot.{c.kind}.{c.name}": c.location for c in current.components},
                        secrets=generated)
        tags = env_tags(env, key, **{TAG_PRODUCTION: snapshot.production, TAG_SNAPSHOT: snapshot.id})
        log.info("env %s: creating stack %s", env, stack_name(env))
        try:
            clients.cloudformation.create_stack(
                StackName=stack_name(env), TemplateBody=api.read_template(
                    spec["template"], what=f"the template of production {snapshot.production}",
                    fix=f"productions.{snapshot.production}.template in doppel.yaml", env=env),
                Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(values.items())],
                Tags=api.tag_list(tags), ClientRequestToken=api.request_token(key), OnFailure="DO_NOTHING",
                TimeoutInMinutes=spec["stack_timeout_minutes"], Capabilities=["CAPABILITY_IAM"])
        except Exception as exc:  # noqa: BLE001 - CloudFormation's refusal is the user's answer
            if api.code_of(exc) == "AlreadyExistsException":
                found = self._stack(clients, env)
                if found is not None:
                    return self.create_stack(env, snapshot, parameters, key)  # made meanwhile: judge it again
            if api.status_of(exc) == 400:
                raise DriverError(f"CloudFormation refused the stack for env {env}: {api.message_of(exc)}; fix the "
                                  f"template or productions.{snapshot.production}.parameters", env=env,
                                  permanent=True) from None
            raise api.error(env, f"create stack {stack_name(env)}", exc) from None
        return self._stack(clients, env) or Stack(id="", name=stack_name(env), env=env, status=CREATE_IN_PROGRESS,
                                                  tags=tags)

    def stack_status(self, env: str) -> Stack | None:
        for clients in self._all_clients():
            found = self._stack(clients, env)
            if found is not None:
                return found
        return None

    def _stack(self, clients, env: str) -> Stack | None:
        try:
            raw = clients.cloudformation.describe_stacks(StackName=stack_name(env))["Stacks"][0]
        except Exception as exc:  # noqa: BLE001
            if api.code_of(exc) == "ValidationError" and "does not exist" in api.message_of(exc):
                return None
            raise api.error(env, f"read stack {stack_name(env)}", exc) from None
        stack = _to_stack(raw, env)
        if stack.status == CREATE_FAILED:
            stack = replace(stack, status_reason=self._failure_reason(clients, raw))
        return stack

    def _failure_reason(self, clients, raw: Mapping) -> str:
        """The first resource that failed, from the stack's events (the stack's own reason says less)."""
        events = api.call(None, f"read the events of stack {raw['StackName']}", lambda: clients.cloudformation
                          .describe_stack_events(StackName=raw["StackId"])["StackEvents"])
        failed = [e for e in reversed(events) if e.get("ResourceStatus", "").endswith("_FAILED")
                  and e.get("LogicalResourceId") != raw["StackName"]]
        if failed:
            first = failed[0]
            return f"{first['LogicalResourceId']} ({first.get('ResourceType')}): {first.get('ResourceStatusReason')}"
        return raw.get("StackStatusReason") or raw.get("StackStatus", "")

    def delete_stack(self, env: str, ignore_missing: bool = True) -> None:
        """Start deleting the env's stack (CloudFormation deletes what it made)."""
        found_any = False
        for clients in self._all_clients():
            found = self._stack(clients, env)
            if found is not None:
                found_any = True
                self._drop_databases(env, found)  # never production's (clouds.aws.databases)
                if found.status != DELETE_IN_PROGRESS:
                    log.info("env %s: deleting stack %s", env, found.name)
                    clients.cloudformation.delete_stack(StackName=found.id or stack_name(env))
        if not found_any:
            self._drop_databases(env, None)  # the dumps of a snapshot whose stack was never made
        self.discard_backup_source(env)
        if not found_any and not ignore_missing:
            from core.cloud import ResourceMissing
            raise ResourceMissing(f"there is no environment {env} to delete", env=env)

    def configure(self, env: str, stack: Stack, policy: Mapping | None, secrets: Mapping[str, str]) -> dict:
        """The environment's endpoints: its stack's outputs. Its credentials are its own already: create_stack
        generated them into the template's parameters (`{secrets.NAME}`), so nothing of production's reaches it. Its
        databases are production's dumps, restored where its outputs say and anonymised, before it is ready."""
        current = configurable_stack(env, stack, self.stack_status(env))
        spec = self._spec(current.tags[TAG_PRODUCTION], env)
        self._restore_databases(env, current, spec, policy)  # its own copy, anonymised (clouds.aws.databases)
        return {**current.outputs}


def render(mapping: Mapping, *, env: str, production: str, parts: Mapping[str, str], secrets: Mapping[str, str]
           ) -> dict:
    """Template parameters with their placeholders filled; a missing snapshot part is named in the error."""
    values = {"env": env, "production": production, **parts,
              **{f"secrets.{name}": value for name, value in secrets.items()}}

    return fill_parameters(mapping, values, env=env, production=production)


def _to_stack(raw: Mapping, env: str | None) -> Stack:
    """Doppel's Stack from CloudFormation's: statuses folded onto create/delete, Doppel's tags."""
    tags = api.tag_dict(raw.get("Tags"))
    env = env or tags.get("doppel-env") or raw["StackName"].removeprefix("doppel-")
    outputs = api.outputs_of(raw)
    outputs.setdefault("env", env)
    outputs["stack_id"] = raw["StackId"]
    status = raw.get("StackStatus", "")
    if status == "DELETE_IN_PROGRESS":
        folded = DELETE_IN_PROGRESS
    elif status == "DELETE_COMPLETE":
        folded = "DELETE_COMPLETE"
    elif status.endswith("_FAILED") or status.startswith("ROLLBACK") or status.endswith("ROLLBACK_COMPLETE"):
        folded = CREATE_FAILED
    elif status.endswith("_IN_PROGRESS"):
        folded = CREATE_IN_PROGRESS
    else:
        folded = CREATE_COMPLETE
    return Stack(id=raw["StackId"], name=raw["StackName"], env=env, status=folded,
                 status_reason=raw.get("StackStatusReason") or "", outputs=outputs, tags=tags)
