"""The `CloudDriver` for productions on AWS: EC2 images, RDS snapshots, CloudFormation stacks, S3.

A production is an existing CloudFormation stack: its EC2 instances and RDS DB
instances, named by their logical ids, are what a snapshot takes. What Doppel makes
for an environment: a Doppel snapshot snap-<env>-<hash> (an AMI per instance, an RDS
snapshot per DB instance, tagged with it; clouds.aws.snapshots) and the stack
doppel-<env> from the production's template (clouds.aws.stacks). Everything carries
the `doppel-env` / `doppel-key` tags the reaper and the compensation find it by. The
databases production names under `databases:` are dumped into S3 at snapshot, restored
and anonymised at configure, dropped at teardown (clouds.aws.databases).

boto3 objects never leave this package: everything returned is one of `core.cloud`'s
dataclasses. Credentials come from boto3's chain (clouds.aws.api), never doppel.yaml.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

from clouds.aws import api
from clouds.aws.backups import BackupVerbs
from clouds.aws.databases import DatabaseVerbs
from clouds.aws.dr import DrVerbs
from clouds.aws.dr_data import DrDataVerbs
from clouds.aws.logs import LogVerbs
from clouds.aws.snapshots import SnapshotVerbs
from clouds.aws.stacks import StackVerbs, stack_name
from core.cloud import TAG_ENV, TAG_SNAPSHOT, DnsRecord, DriverError, TaggedResource, tags_match
from schemas.production import ProductionConfigError, load_productions

IMAGE, DB_SNAPSHOT, SNAPSHOT, STACK = "image", "db_snapshot", "snapshot", "stack"


class AwsDriver(SnapshotVerbs, StackVerbs, BackupVerbs, LogVerbs, DrVerbs, DrDataVerbs, DatabaseVerbs):
    """Doppel's verbs on AWS, for the productions whose `driver` is aws."""

    name = "aws"

    def __init__(self, productions: Mapping, *, state_dir: Path | None = None):
        try:
            loaded = load_productions(productions)
        except ProductionConfigError as exc:
            raise DriverError(f"the productions section of the config is wrong: {exc}", permanent=True) from None
        self.productions = {name: spec for name, spec in loaded.items() if spec["driver"] == "aws"}
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._clients_by_place: dict[tuple, SimpleNamespace] = {}
        self._lock = threading.Lock()
        self._places: dict = {}  # S3 stores of the databases' dumps, by (bucket, region) (clouds.aws.databases)

    def _spec(self, production: str, env: str | None = None) -> dict:
        spec = self.productions.get(production)
        if spec is None:
            known = ", ".join(sorted(self.productions)) or "none"
            raise DriverError(f"there is no aws production named {production!r} in doppel.yaml (aws productions: "
                              f"{known})", env=env, permanent=True)
        return spec

    def _clients(self, spec: Mapping) -> SimpleNamespace:
        """EC2, RDS and CloudFormation clients for a production's region and profile, made on first use."""
        place = (spec["region"], spec.get("profile"))
        with self._lock:
            if place not in self._clients_by_place:
                session = api.session(*place)
                self._clients_by_place[place] = SimpleNamespace(
                    region=place[0], ec2=session.client("ec2"), rds=session.client("rds"),
                    cloudformation=session.client("cloudformation"))
            return self._clients_by_place[place]

    def _all_clients(self) -> list:
        seen, found = set(), []
        for spec in self.productions.values():
            place = (spec["region"], spec.get("profile"))
            if place not in seen:
                seen.add(place)
                found.append(self._clients(spec))
        return found

    def _production_parts(self, clients, production: str, spec: Mapping, env: str) -> tuple[list, list]:
        """Production's EC2 instances and RDS DB instances as (logical id, physical id) pairs, from its stack."""
        try:
            resources = clients.cloudformation.describe_stack_resources(StackName=spec["stack"])["StackResources"]
        except Exception as exc:  # noqa: BLE001
            if "does not exist" in api.message_of(exc):
                raise DriverError(f"production {production}'s CloudFormation stack {spec['stack']!r} does not exist "
                                  f"in {spec['region']}; fix productions.{production}.stack in doppel.yaml", env=env,
                                  permanent=True) from None
            raise api.error(env, f"list the resources of stack {spec['stack']}", exc) from None
        pick = lambda kind: sorted((r["LogicalResourceId"], r["PhysicalResourceId"]) for r in resources  # noqa: E731
                                   if r["ResourceType"] == kind and r.get("PhysicalResourceId"))
        return pick("AWS::EC2::Instance"), pick("AWS::RDS::DBInstance")

    # --- tags -------------------------------------------------------------------------------------

    def find_tagged(self, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        """Doppel snapshots (their images and DB snapshots) and stacks whose tags match."""
        found: list[TaggedResource] = []
        for clients in self._all_clients():
            groups: dict[str, list] = {}
            for image in self._images(clients, tag_filter=dict(tag_filter)):
                tags = api.tag_dict(image.get("Tags"))
                groups.setdefault(tags.get(TAG_SNAPSHOT) or f"image:{image['ImageId']}", []).append(
                    (IMAGE, image["ImageId"], image["Name"], tags))
            for snap in self._db_snapshots(clients, tag_filter=dict(tag_filter)):
                tags = api.tag_dict(snap.get("TagList"))
                groups.setdefault(tags.get(TAG_SNAPSHOT) or f"db_snapshot:{snap['DBSnapshotIdentifier']}", []).append(
                    (DB_SNAPSHOT, snap["DBSnapshotIdentifier"], snap["DBSnapshotIdentifier"], tags))
            for group, parts in sorted(groups.items()):
                names = ", ".join(f"{kind} {name}" for kind, _, name, _ in parts)
                found.append(TaggedResource(SNAPSHOT, group, f"{group} ({names})", parts[0][3]))
            stacks = api.call(None, "list stacks", lambda: clients.cloudformation.describe_stacks()["Stacks"])  # noqa: B023
            for raw in stacks:
                tags = api.tag_dict(raw.get("Tags"))
                if TAG_ENV in tags and tags_match(tags, tag_filter) and raw["StackStatus"] != "DELETE_COMPLETE":
                    found.append(TaggedResource(STACK, raw["StackId"], raw["StackName"], tags))
        return found

    def delete_resource(self, resource: TaggedResource, ignore_missing: bool = True) -> None:
        """Delete one resource found by find_tagged."""
        if resource.kind == SNAPSHOT:
            return self.delete_snapshot(resource.id, ignore_missing=ignore_missing)
        if resource.kind == STACK:
            return self.delete_stack(resource.tags.get(TAG_ENV) or resource.name.removeprefix("doppel-"),
                                     ignore_missing=ignore_missing)
        raise DriverError(f"the aws driver makes no {resource.kind!r} resources, so it cannot delete "
                          f"{resource.name}", permanent=True)

    # --- the rest of the interface: built with the issue "AWS productions" ---------------------------------------

    def object_store(self):
        """S3 in the first aws production's region: bucket doppel-backups (boto3's credential chain)."""
        from clouds.stores.s3 import S3Store
        spec = next(iter(self.productions.values()), None)
        if spec is None:
            raise DriverError("no production uses the aws driver, so it has no object store", permanent=True)
        return S3Store("doppel-backups", region_name=spec["region"])

    def switch_dns(self, record: DnsRecord) -> DnsRecord | None:
        raise DriverError("the aws driver does not switch names itself yet; give the DR policy a Route 53 provider "
                          "(dns.provider: {type: route53, zone: ...}, docs/dns.md)", permanent=True)

    def get_dns(self, name: str) -> DnsRecord | None:
        return None

    def restore_target(self, env: str, production: str | None = None, key: str | None = None):
        raise DriverError(f"restores into AWS environments (env {env}) are not built yet", env=env, permanent=True)

    def database_targets(self, env: str, production: str) -> dict[str, dict]:
        return {}

    def production_root(self, production: str):
        raise DriverError(f"failback into AWS production {production} is not built yet", permanent=True)

    def restore_in_place(self, env_or_production: str, restore, *, keep_old: bool = False, label: str):
        raise DriverError(f"restores in place on AWS ({env_or_production}) are not built yet", env=env_or_production,
                          permanent=True)



__all__ = ["AwsDriver", "stack_name"]
