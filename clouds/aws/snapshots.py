"""Doppel snapshots on AWS: one EC2 image (AMI) per production instance and one RDS snapshot per DB instance.

A Doppel snapshot snap-<env>-<hash> is every image and DB snapshot tagged with its id. Each part is
looked up by tag (images) or by its deterministic identifier (DB snapshots) before it is made, so a
replay makes only the parts still missing: CreateImage takes no idempotency token, so the tag is the
key; CreateDBSnapshot refuses an identifier that exists, which is taken as "made already". Each database
the production names under `databases:` is dumped too (clouds.aws.databases): the snapshot is not
complete until every dump is in S3.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from clouds.aws import api
from core.cloud import (
    SNAPSHOT_COMPLETE,
    SNAPSHOT_FAILED,
    SNAPSHOT_IN_PROGRESS,
    TAG_ENV,
    TAG_PRODUCTION,
    TAG_SNAPSHOT,
    ComponentSnapshot,
    DriverError,
    ResourceMissing,
    Snapshot,
    env_tags,
    resource_name,
)

log = logging.getLogger(__name__)
TAG_COMPONENT = "doppel-component"
IMAGE, DB_SNAPSHOT = "image", "db"
IMAGE_FAILED = ("failed", "invalid", "error", "deregistered")
DB_SNAPSHOT_FAILED = ("failed", "error", "incompatible-restore")


class SnapshotVerbs:
    """The snapshot verbs of `AwsDriver` (clouds.aws.driver): it gives them `_spec`, `_clients`,
    `_all_clients`, `_production_parts` and the databases' dumps (`_with_dumps`)."""

    def snapshot(self, production: str, env: str, key: str, restore=None) -> Snapshot:
        """Start an AMI of each production instance and an RDS snapshot of each DB instance; found parts are kept."""
        if restore is not None:
            raise DriverError(f"env {env}: environments of AWS productions from a backup (--data-version) are not "
                              "built yet; ask for the latest data", env=env, permanent=True)
        if env in self.productions:
            raise DriverError(f"{env} is the name of a production; give the environment another name",
                              env=env, permanent=True)
        spec = self._spec(production, env)
        clients = self._clients(spec)
        snapshot_id = resource_name("snap", env, key)
        tags = env_tags(env, key, **{TAG_PRODUCTION: production, TAG_SNAPSHOT: snapshot_id})
        instances, databases = self._production_parts(clients, production, spec, env)
        imaged = {api.tag_dict(i.get("Tags")).get(TAG_COMPONENT) for i in self._images(clients, snapshot_id)}
        for name, instance_id in instances:
            if name not in imaged:
                log.info("env %s: imaging production %s's instance %s", env, production, name)
                api.call(env, f"image production {production}'s instance {name}", lambda: clients.ec2.create_image(
                    InstanceId=instance_id, Name=f"{snapshot_id}-{name}", NoReboot=True,  # noqa: B023
                    Description=f"Doppel snapshot for env {env}",
                    TagSpecifications=[{"ResourceType": "image",
                                        "Tags": api.tag_list({**tags, TAG_COMPONENT: name})}]))  # noqa: B023
        for name, db_instance in databases:
            identifier = api.rds_identifier(f"{snapshot_id}-{name}")
            log.info("env %s: snapshotting production %s's DB instance %s", env, production, name)
            try:
                clients.rds.create_db_snapshot(DBInstanceIdentifier=db_instance, DBSnapshotIdentifier=identifier,
                                               Tags=api.tag_list({**tags, TAG_COMPONENT: name}))
            except Exception as exc:  # noqa: BLE001
                if api.code_of(exc) != "DBSnapshotAlreadyExists":
                    raise api.error(env, f"snapshot production {production}'s DB instance {name}", exc) from None
        found = self._snapshot_now(clients, snapshot_id)
        if found is None:
            raise DriverError(f"production {production} has no EC2 instance and no RDS instance in stack "
                              f"{spec['stack']}; nothing to snapshot", env=env, permanent=True)
        return self._with_dumps(found, make=True)  # and its `databases:` dumped into S3 (clouds.aws.databases)

    def snapshot_status(self, snapshot_id: str) -> Snapshot:
        for clients in self._all_clients():
            found = self._snapshot_now(clients, snapshot_id)
            if found is not None:
                return self._with_dumps(found, make=False)
        raise ResourceMissing(f"there is no snapshot {snapshot_id} (no image or DB snapshot tagged with it); "
                              "take a new one")

    def _snapshot_now(self, clients, snapshot_id: str) -> Snapshot | None:
        images, db_snapshots = self._images(clients, snapshot_id), self._db_snapshots(clients, snapshot_id)
        if not images and not db_snapshots:
            return None
        first = api.tag_dict(images[0].get("Tags")) if images else api.tag_dict(db_snapshots[0].get("TagList"))
        tags = {k: v for k, v in first.items() if k != TAG_COMPONENT}
        components, waiting, failed, started = [], [], [], []
        for image in images:
            name = api.tag_dict(image.get("Tags")).get(TAG_COMPONENT, image["Name"])
            size = sum(m.get("Ebs", {}).get("VolumeSize", 0) for m in image.get("BlockDeviceMappings", ()))
            components.append(ComponentSnapshot(IMAGE, name, image["ImageId"], int(size) * 2 ** 30))
            state = image.get("State", "pending")
            (failed if state in IMAGE_FAILED else waiting if state != "available" else []).append(
                f"image of instance {name} is {state}")
            started.append(_when(image.get("CreationDate")))
        for snap in db_snapshots:
            name = api.tag_dict(snap.get("TagList")).get(TAG_COMPONENT, snap["DBSnapshotIdentifier"])
            components.append(ComponentSnapshot(DB_SNAPSHOT, name, snap["DBSnapshotIdentifier"],
                                                int(snap.get("AllocatedStorage") or 0) * 2 ** 30))
            status = snap.get("Status", "creating")
            (failed if status in DB_SNAPSHOT_FAILED else waiting if status != "available" else []).append(
                f"snapshot of DB instance {name} is {status}")
            started.append(_when(snap.get("SnapshotCreateTime")))
        status, reason = SNAPSHOT_COMPLETE, ""
        if failed:
            status, reason = SNAPSHOT_FAILED, "; ".join(failed)
        elif waiting:
            status, reason = SNAPSHOT_IN_PROGRESS, "; ".join(waiting)
        created = min(started, default=datetime.now(UTC))
        spec = self.productions.get(tags.get(TAG_PRODUCTION, ""))
        if status == SNAPSHOT_IN_PROGRESS and spec is not None:
            age = (datetime.now(UTC) - created).total_seconds()
            if age > spec["snapshot_timeout_minutes"] * 60:
                status, reason = SNAPSHOT_FAILED, (f"not complete {age / 60:.0f} minutes after it started ({reason}); "
                                                   f"productions.{tags[TAG_PRODUCTION]}.snapshot_timeout_minutes is "
                                                   f"{spec['snapshot_timeout_minutes']}")
        return Snapshot(id=snapshot_id, production=tags.get(TAG_PRODUCTION, ""), env=tags.get(TAG_ENV, ""),
                        created=created, components=tuple(sorted(components, key=lambda c: (c.kind, c.name))),
                        tags=tags, status=status, status_reason=reason)

    def delete_snapshot(self, snapshot_id: str, ignore_missing: bool = True) -> None:
        """Deregister every image tagged with the snapshot (and delete its EBS snapshots), delete its DB snapshots."""
        deleted = 0
        for clients in self._all_clients():
            for image in self._images(clients, snapshot_id):
                self._delete_image(clients, image["ImageId"])
                deleted += 1
            for snap in self._db_snapshots(clients, snapshot_id):
                self._delete_db_snapshot(clients, snap["DBSnapshotIdentifier"])
                deleted += 1
        if not deleted and not ignore_missing:
            raise ResourceMissing(f"there is no snapshot {snapshot_id} to delete")

    def _delete_image(self, clients, image_id: str) -> None:
        found = clients.ec2.describe_images(ImageIds=[image_id]).get("Images", []) if image_id else []
        for image in found:
            clients.ec2.deregister_image(ImageId=image_id)
            for mapping in image.get("BlockDeviceMappings", ()):
                if mapping.get("Ebs", {}).get("SnapshotId"):
                    _ignore_missing(lambda m=mapping: clients.ec2.delete_snapshot(SnapshotId=m["Ebs"]["SnapshotId"]))

    def _delete_db_snapshot(self, clients, identifier: str) -> None:
        _ignore_missing(lambda: clients.rds.delete_db_snapshot(DBSnapshotIdentifier=identifier))

    def _images(self, clients, snapshot_id: str | None = None, tag_filter: dict | None = None) -> list[dict]:
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in (tag_filter or {}).items()]
        if snapshot_id:
            filters.append({"Name": f"tag:{TAG_SNAPSHOT}", "Values": [snapshot_id]})
        filters = filters or [{"Name": "tag-key", "Values": [TAG_SNAPSHOT]}]
        return api.call(None, "list Doppel's images", lambda: clients.ec2.describe_images(
            Owners=["self"], Filters=filters)["Images"])

    def _db_snapshots(self, clients, snapshot_id: str | None = None, tag_filter: dict | None = None) -> list[dict]:
        wanted = {**(tag_filter or {}), **({TAG_SNAPSHOT: snapshot_id} if snapshot_id else {})}
        found = api.call(None, "list Doppel's DB snapshots",
                         lambda: clients.rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"])
        return [s for s in found if TAG_SNAPSHOT in api.tag_dict(s.get("TagList")) and s.get("Status") != "deleting"
                and all(api.tag_dict(s.get("TagList")).get(k) == v for k, v in wanted.items())]


def _ignore_missing(action) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001
        if "NotFound" not in api.code_of(exc):
            raise


def _when(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
