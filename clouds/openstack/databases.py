"""An OpenStack environment's own databases (clouds.databases.copies): production's consistent dump kept in the
env's Swift container doppel-<env>, restored where the env's stack says, anonymised before env.ready, and dropped
with the environment.

This module is only where OpenStack keeps the dumps (`SwiftPlace`, which tags the container with the env's
tags for the reaper) and how production's stack outputs are read from Heat; what is dumped, restored,
anonymised, refused and dropped is the shared code's, the same on every cloud.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from clouds.databases.copies import drop_databases, dump_databases, restore_databases
from clouds.openstack import sdk
from clouds.openstack.resources import container_name
from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT, ComponentSnapshot, Stack

CHUNK = 1 << 20


class SwiftPlace:
    """The env's container doppel-<env>, as a `DumpPlace`."""

    def __init__(self, driver, conn, env: str, tags: Mapping[str, str]):
        self.driver, self.conn, self.env, self.container = driver, conn, env, container_name(env)
        self.tags = tags

    def size(self, name: str) -> int | None:
        try:
            return int(self.conn.object_store.get_object_metadata(name, container=self.container).content_length
                       or 0)
        except Exception as exc:  # noqa: BLE001
            if sdk.status_code(exc) == 404:
                return None
            raise sdk.transient(self.env, f"read {name} in container {self.container}", exc) from None

    def upload(self, name: str, path: str) -> None:
        meta = {k: v for k, v in self.tags.items() if k in (TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT)}
        sdk.call(self.env, f"create container {self.container}",
                 lambda: self.conn.object_store.create_container(self.container, metadata=meta))
        sdk.call(self.env, f"store {name}",
                 lambda: self.conn.object_store.upload_object(self.container, name, filename=path, metadata=meta))

    def read_json(self, name: str) -> dict | None:
        return self.driver._read_object(self.conn, self.container, name)

    def write_json(self, name: str, value: Mapping) -> None:
        self.driver._put_object(self.conn, self.env, self.tags, name, json.dumps(value).encode())

    def stream(self, name: str) -> Iterator[bytes]:
        try:
            yield from self.conn.object_store.stream_object(name, container=self.container, chunk_size=CHUNK)
        except Exception as exc:  # noqa: BLE001
            raise sdk.transient(self.env, f"read {name}", exc) from None

    def delete(self, name: str) -> None:
        self.conn.object_store.delete_object(name, container=self.container, ignore_missing=True)

    def location(self, name: str) -> str:
        return f"swift:{self.container}/{name}"


class DatabaseVerbs:
    """The databases of `OpenStackDriver` (clouds.openstack.driver), which gives them its productions, its
    connections, its Swift helpers (`_put_object`, `_read_object`) and production's parts."""

    def _production_outputs(self, conn, production: str, spec: Mapping, env: str) -> dict:
        """Production's stack outputs (where its databases are); none for a production named by its servers."""
        if not spec.get("stack"):
            return {}
        found = sdk.call(env, f"find production {production}'s stack",
                         lambda: conn.orchestration.find_stack(spec["stack"], ignore_missing=False))
        raw = sdk.call(env, f"read production {production}'s stack", lambda: conn.orchestration.get_stack(found.id))
        return {o["output_key"]: o.get("output_value") for o in (raw.outputs or [])}

    def _dump_databases(self, conn, production: str, spec: Mapping, env: str, snapshot_id: str,
                        tags: Mapping[str, str], make: bool = True) -> list[ComponentSnapshot]:
        """Dump each of production's databases into the env's container once per snapshot (only those there
        already when not `make`); their parts."""
        return dump_databases(SwiftPlace(self, conn, env, tags), spec["databases"], snapshot_id, env=env,
                              production=production, make=make,
                              production_outputs=lambda: self._production_outputs(conn, production, spec, env))

    def _restore_databases(self, conn, env: str, current: Stack, spec: Mapping, policy: Mapping | None,
                           secrets: Mapping[str, str] | None = None) -> dict:
        """Give the env its own copy of each database from the snapshot's dump, anonymised, and (`owner:`) its own
        account with the fresh secrets its bundle carries."""
        production = current.tags[TAG_PRODUCTION]
        return restore_databases(
            SwiftPlace(self, conn, env, current.tags), spec["databases"],
            (policy if policy is not None else spec["clone"]).get("anonymise") or [], env=env, production=production,
            snapshot_id=current.tags.get(TAG_SNAPSHOT, ""), stack_id=current.id, outputs=current.outputs,
            production_outputs=lambda: self._production_outputs(conn, production, spec, env), secrets=secrets)

    def _drop_databases(self, conn, env: str, stack: Stack) -> None:
        """Drop the env's own databases (where its stack's outputs say), never production's."""
        production = stack.tags.get(TAG_PRODUCTION, "")
        spec = self.productions.get(production)
        if spec is None or not spec["databases"]:
            return
        drop_databases(spec["databases"], env=env, production=production, outputs=stack.outputs,
                       production_outputs=lambda: self._production_outputs(conn, production, spec, env))
