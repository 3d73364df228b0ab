"""An environment's configuration on OpenStack: its config bundle in Swift and its fresh credentials.

The Swift container doppel-<env> holds the config bundle instances read at boot
(config.json) and a marker (configured.json) recording that configure is done.
Only configure waits, for the in-place stack update that hands the environment its
fresh credentials (seconds).
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping

from clouds.openstack import sdk
from clouds.openstack.resources import BUNDLE_OBJECT, CONTAINER, MARKER_OBJECT, container_name, stack_name
from clouds.openstack.template import render_parameters, uses_secrets_or_bundle
from core.cloud import (
    TAG_ENV,
    TAG_KEY,
    TAG_PRODUCTION,
    DriverError,
    Stack,
    TaggedResource,
    configurable_stack,
    tags_match,
)
from schemas.templates import TemplateError, render

CONFIGURE_WAIT_S = 180


class BundleVerbs:
    """`configure` of `OpenStackDriver` (clouds.openstack.driver), and the Swift container doppel-<env> that
    holds the bundle; the driver gives them its productions, its connections and its stacks' status."""

    def configure(self, env: str, stack: Stack, policy: Mapping | None, secrets: Mapping[str, str]) -> dict:
        """Put the env's config bundle in Swift, hand the stack its fresh credentials, and check both.

        First each of production's databases is restored into the env's own and anonymised
        (clouds.openstack.databases). The bundle is the production's `bundle:` settings rendered with
        the stack's outputs and the fresh secrets, plus whether crons run; crons off is checked, not
        only written (`_check_crons_off`). Done once: a marker object records the endpoints.
        """
        current = configurable_stack(env, stack, self.stack_status(env))
        production = current.tags[TAG_PRODUCTION]
        spec = self._spec(production, env)
        conn = self._conn(spec)
        done = self._read_object(conn, container_name(env), MARKER_OBJECT)
        if done is not None and done.get("stack") == current.id:
            return done["endpoints"]
        self._restore_databases(conn, env, current, spec, policy, dict(secrets or {}))
        endpoints = {**current.outputs, "config_url": self._config_url(conn, env)}
        bundle = self._bundle(env, production, spec, policy, dict(secrets or {}), current.outputs)
        body = json.dumps(bundle, sort_keys=True).encode()
        self._put_object(conn, env, current.tags, BUNDLE_OBJECT, body)
        self._hand_over(conn, env, current, spec, dict(secrets or {}))
        self._check_configured(conn, env, current, spec, body)
        if not bundle["crons"]:
            self._check_crons_off(conn, env, current)
        self._put_object(conn, env, current.tags, MARKER_OBJECT,
                         json.dumps({"stack": current.id, "endpoints": endpoints}).encode())
        return endpoints

    def _bundle(self, env: str, production: str, spec: Mapping, policy: Mapping | None, secrets: dict,
                outputs: Mapping) -> dict:
        declared = spec["clone"]["secrets"]
        missing = [name for name in declared if name not in secrets]
        if missing:
            raise DriverError(f"configure of env {env} was given no value for secrets {', '.join(missing)}",
                              env=env, permanent=True)
        try:
            settings = {key: render(value, outputs=outputs, secrets=secrets, env=env, production=production)
                        for key, value in spec["bundle"].items()}
        except TemplateError as exc:
            raise DriverError(f"the config bundle of env {env} cannot be made: {exc}; fix "
                              f"productions.{production}.bundle", env=env, permanent=True) from None
        crons = (policy or {}).get("crons") or spec["clone"]["crons"]
        return {"env": env, "production": production, "settings": settings, "crons": crons == "keep",
                "endpoints": dict(outputs)}

    def _hand_over(self, conn, env: str, current: Stack, spec: Mapping, secrets: dict) -> None:
        """Update the stack in place with the parameters that carry fresh credentials and the bundle's URL."""
        changed = {name: value for name, value in spec["parameters"].items() if uses_secrets_or_bundle(value)}
        if not changed:
            return
        values = render_parameters(changed, images={}, volume_snapshots={}, secrets=secrets,
                                   config_url=self._config_url(conn, env), env=env,
                                   production=current.tags[TAG_PRODUCTION])
        path = f"/stacks/{stack_name(env)}/{current.id}"
        response = conn.orchestration.patch(path, json={"parameters": values, "timeout_mins": 10}, raise_exc=False)
        if response.status_code >= 400:
            raise DriverError(f"Heat refused to update env {env}'s stack with its credentials: "
                              f"{response.text[:300]}", env=env, permanent=response.status_code == 400)
        deadline = time.monotonic() + CONFIGURE_WAIT_S
        while time.monotonic() < deadline:
            raw = conn.orchestration.get_stack(current.id)
            if raw.status == "UPDATE_COMPLETE":
                return
            if raw.status.endswith("FAILED"):
                raise DriverError(f"updating env {env}'s stack with its credentials failed: {raw.status_reason}",
                                  env=env, permanent=True)
            time.sleep(1)
        raise DriverError(f"env {env}'s stack update took over {CONFIGURE_WAIT_S}s; it is retried", env=env)

    def _check_configured(self, conn, env: str, current: Stack, spec: Mapping, body: bytes) -> None:
        """Read back through the APIs what instances will read: the bundle, and the stack's bundle URL."""
        stored = sdk.call(env, "read back the config bundle",
                          lambda: conn.object_store.download_object(BUNDLE_OBJECT, container=container_name(env)))
        if hashlib.sha256(stored).digest() != hashlib.sha256(body).digest():
            raise DriverError(f"env {env}'s config bundle in Swift differs from what was written; it is retried",
                              env=env)
        carrying = {name: value for name, value in spec["parameters"].items()
                    if isinstance(value, str) and "{config_url}" in value.replace(" ", "")}
        wanted = render_parameters(carrying, images={}, volume_snapshots={}, secrets={},
                                   config_url=self._config_url(conn, env), env=env,
                                   production=current.tags[TAG_PRODUCTION])
        parameters = sdk.call(env, "read back the stack", lambda: conn.orchestration.get_stack(current.id)).parameters
        wrong = sorted(name for name, value in wanted.items() if (parameters or {}).get(name) != value)
        if wrong:
            raise DriverError(f"env {env}'s stack parameters {', '.join(wrong)} do not carry its bundle URL after "
                              "the update; it is retried", env=env)

    def _check_crons_off(self, conn, env: str, current: Stack) -> None:
        """Crons off, checked: the bundle read back says so, and every server of the env's stack carries that
        bundle's URL (in its Nova metadata or user data), so each reads it at boot. A server that does not would
        run the crontab of the image it booted from (production's), so the environment fails instead."""
        stored = json.loads(conn.object_store.download_object(BUNDLE_OBJECT, container=container_name(env)))
        if stored.get("crons") is not False:
            raise DriverError(f"env {env}'s config bundle does not say crons are off; it is retried", env=env)
        url = self._config_url(conn, env)
        raw = sdk.call(env, "read back the stack", lambda: conn.orchestration.get_stack(current.id))
        resources = sdk.call(env, "list the stack's servers", lambda: list(conn.orchestration.resources(raw)))
        deaf = []
        for resource in sorted((r for r in resources if r.resource_type == "OS::Nova::Server"), key=lambda r: r.name):
            server = sdk.call(env, f"read server {resource.name}",
                              lambda: conn.compute.get_server(resource.physical_resource_id))  # noqa: B023
            carried = [str(value) for value in (server.metadata or {}).values()]
            if server.user_data:
                carried.append(base64.b64decode(server.user_data).decode(errors="replace"))
            if not any(url in text for text in carried):
                deaf.append(resource.name)
        if deaf:
            raise DriverError(f"env {env}: crons are to be off, but server(s) {', '.join(deaf)} do not carry the URL "
                              "of the config bundle that turns them off (in their metadata or user data), so they "
                              "would run the crontab of the image they booted from; give every server "
                              "{get_param: config_url} in the template (or set clone.crons: keep)", env=env,
                              permanent=True)

    def _config_url(self, conn, env: str) -> str:
        return f"{conn.object_store.get_endpoint().rstrip('/')}/{container_name(env)}/{BUNDLE_OBJECT}"

    def _put_object(self, conn, env: str, tags: Mapping[str, str], name: str, body: bytes) -> None:
        meta = {k: v for k, v in tags.items() if k in (TAG_ENV, TAG_KEY, TAG_PRODUCTION)}
        sdk.call(env, f"create container {container_name(env)}",
                 lambda: conn.object_store.create_container(container_name(env), **{"metadata": meta}))
        sdk.call(env, f"write {name} to container {container_name(env)}",
                 lambda: conn.object_store.upload_object(container_name(env), name, data=body, metadata=meta))

    def _read_object(self, conn, container: str, name: str) -> dict | None:
        try:
            return json.loads(conn.object_store.download_object(name, container=container))
        except Exception as exc:  # noqa: BLE001
            if sdk.status_code(exc) == 404:
                return None
            raise

    def _delete_container(self, conn, container: str) -> bool:
        try:
            objects = list(conn.object_store.objects(container))
        except Exception as exc:  # noqa: BLE001
            if sdk.status_code(exc) == 404:
                return False
            raise
        for obj in objects:
            conn.object_store.delete_object(obj.name, container=container, ignore_missing=True)
        conn.object_store.delete_container(container, ignore_missing=True)
        return True

    def _containers(self, conn, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        found = []
        for container in conn.object_store.containers(prefix="doppel-"):
            head = conn.object_store.get_container_metadata(container.name)
            tags = sdk.doppel_tags({k.lower(): v for k, v in (head.metadata or {}).items()})
            if tags and tags_match(tags, tag_filter):
                found.append(TaggedResource(CONTAINER, container.name, container.name, tags))
        return found
