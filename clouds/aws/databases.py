"""An AWS environment's own databases (clouds.databases.copies): production's consistent dump kept in S3, restored
where the env's stack outputs say, anonymised before env.ready, and dropped with the environment.

The dumps wait in the production's bucket (`bucket:`, default doppel-envs, in its region) under `<env>/`:
snapshot/<snapshot id>/<name>.dump, databases.json (what configure has restored) and, from create_stack
to configure, credentials.json: the passwords the env's own accounts (`owner:`) are made with. Teardown drops each env
database and deletes everything under `<env>/`. What is dumped, restored, anonymised (failing closed),
refused (production's own database) and dropped is the shared code's, the same as on OpenStack; this module
is only where AWS keeps the dumps and how production's stack outputs are read from CloudFormation.
"""
from __future__ import annotations

import json
import secrets as _secrets
from collections.abc import Iterator, Mapping
from dataclasses import replace

from clouds.aws import api
from clouds.databases.copies import drop_databases, dump_databases, restore_databases
from core.cloud import (
    SNAPSHOT_COMPLETE,
    SNAPSHOT_IN_PROGRESS,
    TAG_PRODUCTION,
    TAG_SNAPSHOT,
    ComponentSnapshot,
    DriverError,
    Snapshot,
    Stack,
)
from core.stores import ObjectMissing, StoreError

CREDENTIALS = "credentials.json"  # the env's generated passwords, from create_stack until configure

class S3Place:
    """The prefix `<env>/` of the production's bucket, as a `DumpPlace`."""

    def __init__(self, store, env: str):
        self.store, self.env, self.prefix = store, env, f"{env}/"

    def _failed(self, what: str, exc: BaseException) -> DriverError:
        return DriverError(f"could not {what} in {self.store.name} for env {self.env}: {exc}; it is retried",
                           env=self.env)

    def size(self, name: str) -> int | None:
        key = self.prefix + name
        try:
            return next((info.size for info in self.store.list(key) if info.key == key), None)
        except StoreError as exc:
            raise self._failed(f"look for {key}", exc) from None

    def upload(self, name: str, path: str) -> None:
        try:
            with open(path, "rb") as file:
                self.store.put_stream(self.prefix + name, file)
        except StoreError as exc:
            raise self._failed(f"store {name}", exc) from None

    def read_json(self, name: str) -> dict | None:
        try:
            return json.loads(self.store.get_bytes(self.prefix + name))
        except ObjectMissing:
            return None
        except StoreError as exc:
            raise self._failed(f"read {name}", exc) from None

    def write_json(self, name: str, value: Mapping) -> None:
        try:
            self.store.put_bytes(self.prefix + name, json.dumps(value).encode())
        except StoreError as exc:
            raise self._failed(f"write {name}", exc) from None

    def stream(self, name: str) -> Iterator[bytes]:
        return self.store.get_stream(self.prefix + name)

    def delete(self, name: str) -> None:
        try:
            self.store.delete(self.prefix + name)
        except StoreError as exc:
            raise self._failed(f"delete {name}", exc) from None

    def clear(self) -> None:
        """Delete everything under the env's prefix (its dumps and progress)."""
        try:
            for info in self.store.list(self.prefix):
                self.store.delete(info.key)
        except StoreError as exc:
            raise self._failed(f"delete what is under {self.prefix}", exc) from None

    def location(self, name: str) -> str:
        return f"{self.store.name}/{self.prefix}{name}"


class DatabaseVerbs:
    """The databases of `AwsDriver` (clouds.aws.driver), which gives them its productions and `_clients`."""

    _places: dict

    def _place(self, spec: Mapping, env: str) -> S3Place:
        from clouds.stores.s3 import S3Store
        place = (spec["bucket"], spec["region"])
        if place not in self._places:  # one client per bucket (it is made once; boto3's credential chain)
            self._places[place] = S3Store(spec["bucket"], region_name=spec["region"])
        return S3Place(self._places[place], env)

    def _production_outputs(self, production: str, spec: Mapping, env: str | None = None) -> dict:
        """Production's stack outputs: where its databases are (for env `env`'s chain, or DR's: clouds.aws.dr_data)."""
        clients = self._clients(spec)
        raw = api.call(env or production, f"read production {production}'s stack {spec['stack']}", lambda: clients
                       .cloudformation.describe_stacks(StackName=spec["stack"])["Stacks"][0])
        return api.outputs_of(raw)

    def _dump_databases(self, production: str, spec: Mapping, env: str, snapshot_id: str,
                        make: bool = True) -> list[ComponentSnapshot]:
        """Dump each of production's databases into S3 once per snapshot (only look when not `make`)."""
        if not spec["databases"]:
            return []
        return dump_databases(self._place(spec, env), spec["databases"], snapshot_id, env=env, production=production,
                              make=make, production_outputs=lambda: self._production_outputs(production, spec, env))

    def _env_secrets(self, spec: Mapping, env: str) -> dict[str, str]:
        """The passwords create_stack puts in the env's stack's parameters, fresh for each environment. Those its
        own database accounts (`owner:`) are made with are kept until configure has made them: CloudFormation
        shows a NoEcho parameter to no one, so this object in Doppel's own bucket hands them over (a retried
        create uses the same ones), and configure deletes it. Never on an event or in a log."""
        generated = {name: _secrets.token_urlsafe(24) for name in spec["clone"]["secrets"]}
        used = {o["owner"]["password"][len("{secrets."):-1] for o in spec["databases"] if o.get("owner")}
        if not used:
            return generated
        place = self._place(spec, env)
        kept = place.read_json(CREDENTIALS) or {}
        if not used <= kept.keys():
            kept = {name: generated[name] for name in used}
            place.write_json(CREDENTIALS, kept)
        return {**generated, **kept}

    def _restore_databases(self, env: str, current: Stack, spec: Mapping, policy: Mapping | None) -> dict:
        """Give the env its own copy of each database from the snapshot's dump, anonymised, and (`owner:`) its own
        account with the password its stack was made with."""
        production, place = current.tags[TAG_PRODUCTION], self._place(spec, env)
        credentials = place.read_json(CREDENTIALS) if any(d.get("owner") for d in spec["databases"]) else None
        restored = restore_databases(
            place, spec["databases"],
            (policy if policy is not None else spec["clone"]).get("anonymise") or [], env=env, production=production,
            snapshot_id=current.tags.get(TAG_SNAPSHOT, ""), stack_id=current.id, outputs=current.outputs,
            production_outputs=lambda: self._production_outputs(production, spec, env), secrets=credentials)
        if credentials is not None:
            place.delete(CREDENTIALS)  # the accounts are made: nothing keeps the passwords but the stack
        return restored

    def _with_dumps(self, found: Snapshot, make: bool) -> Snapshot:
        """The snapshot with its databases' dumps among its parts, dumping those missing when `make` (the snapshot
        verb; a poll only looks, so no second dump starts meanwhile); in progress until every dump is there."""
        spec = self.productions.get(found.production)
        if spec is None or not spec["databases"]:
            return found
        dumps = self._dump_databases(found.production, spec, found.env, found.id, make=make)
        found = replace(found, components=tuple(sorted((*found.components, *dumps), key=lambda c: (c.kind, c.name))))
        if len(dumps) < len(spec["databases"]) and found.status == SNAPSHOT_COMPLETE:
            return replace(found, status=SNAPSHOT_IN_PROGRESS, status_reason="production's databases are being dumped")
        return found

    def _drop_databases(self, env: str, stack: Stack | None) -> None:
        """Drop the env's own databases (where its stack's outputs say), never production's; delete its dumps."""
        production = stack.tags.get(TAG_PRODUCTION, "") if stack is not None else ""
        spec = self.productions.get(production)
        if spec is not None and spec["databases"]:
            drop_databases(spec["databases"], env=env, production=production, outputs=stack.outputs,
                           production_outputs=lambda: self._production_outputs(production, spec, env))
        buckets = {(s["bucket"], s["region"]): s for s in self.productions.values() if s["databases"]}
        for one in buckets.values():  # a snapshot's dumps outlive a stack that was never made
            self._place(one, env).clear()
