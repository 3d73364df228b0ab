"""Environments on OpenStack: the Heat stack doppel-<env>, from the production's template.

Heat tags the stack `doppel` and `doppel-env=<env>`; the full tags travel as the
template's Doppel parameters (clouds.openstack.template), since Heat's own tags
cannot hold a request id safely.
"""
from __future__ import annotations

import hashlib
import logging
import secrets as _secrets
from collections.abc import Mapping

from clouds.openstack import sdk
from clouds.openstack.file_trees import host_key_values
from clouds.openstack.resources import HEAT_TAG, STACK, container_name, heat_tag_env, stack_name
from clouds.openstack.template import DOPPEL_PARAMETERS, load_template, render_parameters
from core.cloud import (
    CREATE_COMPLETE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    DELETE_IN_PROGRESS,
    TAG_ENV,
    TAG_KEY,
    TAG_PRODUCTION,
    TAG_SNAPSHOT,
    DriverError,
    ResourceMissing,
    Snapshot,
    Stack,
    TaggedResource,
    env_tags,
    existing_stack,
    require_complete,
    tags_match,
)

log = logging.getLogger(__name__)


class StackVerbs:
    """The stack verbs of `OpenStackDriver` (clouds.openstack.driver), which gives them its productions and
    connections, its snapshots' status, its bundle container (`_config_url`, `_delete_container`) and what its
    backups wrote (`discard_backup_source`)."""

    def create_stack(self, env: str, snapshot: Snapshot, parameters: dict, key: str) -> Stack:
        """Start the Heat stack doppel-<env> from the production's template; a replay returns the same stack."""
        spec = self._spec(snapshot.production, env)
        conn = self._conn(spec)
        found = self._stack(conn, env)
        if existing_stack(found, env, key) is not None:
            return found
        current = require_complete(self.snapshot_status(snapshot.id), env)
        template = load_template(spec["template"], production=snapshot.production, env=env)
        values = render_parameters(
            {**spec["parameters"], **(parameters or {})},
            images={c.name: c.location for c in current.components if c.kind == "image"},
            volume_snapshots={c.name: c.location for c in current.components if c.kind == "volume"},
            secrets={name: _secrets.token_urlsafe(24) for name in spec["clone"]["secrets"]},
            config_url=self._config_url(conn, env), env=env, production=snapshot.production,
            host_keys=host_key_values(spec, snapshot.production, env=env))  # a server keeps production's host key
        tags = env_tags(env, key, **{TAG_PRODUCTION: snapshot.production, TAG_SNAPSHOT: snapshot.id})
        values.update({parameter: tags[tag] for parameter, tag in DOPPEL_PARAMETERS.items()})
        log.info("env %s: creating stack %s", env, stack_name(env))
        try:
            conn.orchestration.create_stack(
                name=stack_name(env), template=template, parameters=values, timeout_mins=spec["stack_timeout_minutes"],
                tags=",".join([HEAT_TAG, heat_tag_env(env), f"{TAG_KEY}={_digest(key)}"]))
        except Exception as exc:  # noqa: BLE001 - Heat's refusal is the user's answer
            if sdk.status_code(exc) == 409:
                return self.create_stack(env, snapshot, parameters, key)  # made meanwhile: judge it again
            if sdk.status_code(exc) == 400:
                raise DriverError(f"Heat refused the stack for env {env}: {sdk.heat_message(exc)}; fix the template "
                                  f"or productions.{snapshot.production}.parameters", env=env, permanent=True) from None
            raise sdk.transient(env, f"create stack {stack_name(env)}", exc) from None
        return self._stack(conn, env) or Stack(id="", name=stack_name(env), env=env, status=CREATE_IN_PROGRESS,
                                               tags=tags)

    def stack_status(self, env: str) -> Stack | None:
        for conn in self._all_conns():
            found = self._stack(conn, env)
            if found is not None:
                return found
        return None

    def _stack(self, conn, env: str) -> Stack | None:
        found = sdk.call(env, f"look up stack {stack_name(env)}",
                         lambda: conn.orchestration.find_stack(stack_name(env), ignore_missing=True))
        if found is None:
            return None
        full = sdk.call(env, f"read stack {stack_name(env)}", lambda: conn.orchestration.get_stack(found.id))
        return _to_stack(full, env)

    def delete_stack(self, env: str, ignore_missing: bool = True) -> None:
        """Drop the env's own databases, start deleting its stack (Heat deletes its servers and volumes) and delete
        its bundle container."""
        found_any = False
        for conn in self._all_conns():
            found = conn.orchestration.find_stack(stack_name(env), ignore_missing=True)
            if found is not None:
                found_any = True
                self._drop_databases(conn, env, _to_stack(conn.orchestration.get_stack(found.id), env))
                if found.status != "DELETE_IN_PROGRESS":
                    log.info("env %s: deleting stack %s", env, found.name)
                    conn.orchestration.delete_stack(found.id, ignore_missing=True)
            found_any |= self._delete_container(conn, container_name(env))
        self.discard_backup_source(env)
        if not found_any and not ignore_missing:
            raise ResourceMissing(f"there is no environment {env} to delete", env=env)

    def _stacks(self, conn, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        """Stacks Heat lists with Doppel's tag (filtered here: Heat's own tag filter misses them on Zed)."""
        wanted = heat_tag_env(tag_filter[TAG_ENV]) if TAG_ENV in tag_filter else HEAT_TAG
        found = []
        for summary in conn.orchestration.stacks():
            if HEAT_TAG not in (summary.tags or ()) or wanted not in (summary.tags or ()):
                continue
            stack = _to_stack(conn.orchestration.get_stack(summary.id), None)
            if stack.status != "DELETE_COMPLETE" and tags_match(stack.tags, tag_filter):
                found.append(TaggedResource(STACK, stack.id, stack.name, stack.tags))
        return found


def _to_stack(raw, env: str | None) -> Stack:
    """Doppel's Stack from Heat's: statuses folded onto create/delete, tags from Doppel's parameters."""
    parameters = raw.parameters or {}
    tags = {tag: parameters[p] for p, tag in DOPPEL_PARAMETERS.items() if parameters.get(p)}
    env = env or tags.get(TAG_ENV) or raw.name.removeprefix("doppel-")
    outputs = {o["output_key"]: o.get("output_value") for o in (raw.outputs or [])}
    outputs.setdefault("env", env)
    outputs["stack_id"] = raw.id
    status = raw.status or ""
    if status.startswith("DELETE") and status != "DELETE_FAILED":
        folded = DELETE_IN_PROGRESS if status == "DELETE_IN_PROGRESS" else "DELETE_COMPLETE"
    elif status.endswith("_FAILED"):
        folded = CREATE_FAILED
    elif status.endswith("_IN_PROGRESS"):
        folded = CREATE_IN_PROGRESS
    else:
        folded = CREATE_COMPLETE
    return Stack(id=raw.id, name=raw.name, env=env, status=folded, status_reason=raw.status_reason or "",
                 outputs=outputs, tags=tags)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]
