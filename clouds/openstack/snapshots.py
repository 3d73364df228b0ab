"""Doppel snapshots on OpenStack: one Nova image per production server and one Cinder snapshot per volume (and a
dump of each production database, clouds.openstack.databases).

A Doppel snapshot snap-<env>-<hash> is every image (image properties) and volume
snapshot (snapshot metadata) tagged with its id; each part is looked up by tag
before it is made, so a replay makes only the parts still missing.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from clouds.openstack import sdk
from clouds.openstack.resources import IMAGE_FAILED, TAG_COMPONENT, TAG_SERVER, VOLUME_SNAPSHOT_FAILED
from core.cloud import (
    SNAPSHOT_COMPLETE,
    SNAPSHOT_FAILED,
    SNAPSHOT_IN_PROGRESS,
    TAG_ENV,
    TAG_KEY,
    TAG_PRODUCTION,
    TAG_SNAPSHOT,
    ComponentSnapshot,
    DriverError,
    ResourceMissing,
    Snapshot,
    env_tags,
    resource_name,
    tags_match,
)

log = logging.getLogger(__name__)


class SnapshotVerbs:
    """The snapshot verbs of `OpenStackDriver` (clouds.openstack.driver), which gives them its productions
    and connections (`productions`, `_spec`, `_conn`, `_all_conns`, `_production_parts`)."""

    def snapshot(self, production: str, env: str, key: str, restore=None) -> Snapshot:
        """Start a Nova image of each server and a Cinder snapshot of each volume; parts found by tag are kept.
        Then dump each of production's databases not dumped yet for this snapshot."""
        return self._snapshot(production, env, key, restore, dump=True)

    def _snapshot(self, production: str, env: str, key: str, restore=None, *, dump: bool) -> Snapshot:
        """The snapshot verb; with `dump` False (a poll) the databases' dumps are only looked for: the snapshot
        function made them before it returned (or failed), and a poll must not start a second dump meanwhile."""
        if restore is not None:
            raise DriverError(f"env {env}: environments of OpenStack productions from a backup (--data-version) are "
                              "not built yet; ask for the latest data", env=env, permanent=True)
        if env in self.productions:
            raise DriverError(f"{env} is the name of a production; give the environment another name",
                              env=env, permanent=True)
        spec = self._spec(production, env)
        conn = self._conn(spec)
        snapshot_id = resource_name("snap", env, key)
        tags = env_tags(env, key, **{TAG_PRODUCTION: production, TAG_SNAPSHOT: snapshot_id})
        servers, volumes = self._production_parts(conn, production, spec, env)
        images = {i.properties.get(TAG_COMPONENT): i for i in self._images(conn, {TAG_SNAPSHOT: snapshot_id})}
        busy = []
        for name, server_id in servers:
            if name not in images and not self._image_server(conn, env, production, snapshot_id, tags, name,
                                                             server_id):
                busy.append(f"server {name} is busy with another task; its image starts on a later poll")
        made = {s.metadata.get(TAG_COMPONENT) for s in self._volume_snapshots(conn, {TAG_SNAPSHOT: snapshot_id})}
        for name, volume_id in volumes:
            if name not in made:
                log.info("env %s: snapshotting production %s's volume %s", env, production, name)
                sdk.call(env, f"snapshot production {production}'s volume {name}",  # the lambda runs at once
                         lambda: conn.block_storage.create_snapshot(
                             volume_id=volume_id, name=f"{snapshot_id}-{name}", force=True,  # noqa: B023
                             description=f"Doppel snapshot for env {env}",
                             metadata={**tags, TAG_COMPONENT: name}))  # noqa: B023
        found = self._snapshot_now(conn, snapshot_id, expected=len(servers) + len(volumes), busy=busy)
        if found is None or not found.components:
            # Nothing started yet, so no part carries the tags a poll would find it by: retry the request.
            raise DriverError(f"cannot snapshot production {production} for env {env} yet: {'; '.join(busy)}; "
                              "it is retried", env=env)
        if not spec["databases"]:
            return found
        # Production's databases as of now, beside its disks' snapshots (clouds.openstack.databases)
        dumps = self._dump_databases(conn, production, spec, env, snapshot_id, tags, make=dump)
        found = replace(found, components=tuple(sorted((*found.components, *dumps), key=lambda c: (c.kind, c.name))))
        if len(dumps) < len(spec["databases"]) and found.status == SNAPSHOT_COMPLETE:
            # The snapshot function is still dumping, or retrying a dump that failed: not done until it is there
            return replace(found, status=SNAPSHOT_IN_PROGRESS, status_reason="production's databases are being dumped")
        return found

    def _image_server(self, conn, env: str, production: str, snapshot_id: str, tags: Mapping, name: str,
                      server_id: str) -> bool:
        """Start the image of one server; False when Nova says the server is busy (another snapshot)."""
        log.info("env %s: imaging production %s's server %s", env, production, name)
        try:
            conn.compute.create_server_image(server_id, name=f"{snapshot_id}-{name}",
                                             metadata={**tags, TAG_COMPONENT: name, TAG_SERVER: server_id})
            return True
        except Exception as exc:  # noqa: BLE001
            if sdk.status_code(exc) == 409 and "task_state" in str(exc):
                return False  # one image at a time per server: another env's snapshot is being taken
            raise sdk.transient(env, f"snapshot production {production}'s server {name}", exc) from None

    def snapshot_status(self, snapshot_id: str) -> Snapshot:
        """The snapshot as it is now. A part not started yet (its server was busy) is started here."""
        for conn in self._all_conns():
            found = self._snapshot_now(conn, snapshot_id, expected=None)
            if found is None:
                continue
            production, env, key = (found.tags.get(t) for t in (TAG_PRODUCTION, TAG_ENV, TAG_KEY))
            if found.status != SNAPSHOT_FAILED and production in self.productions and env and key:
                # finds every part by tag; makes only the missing images and volume snapshots
                return self._snapshot(production, env, key, dump=False)
            return found
        raise ResourceMissing(f"there is no snapshot {snapshot_id} (no image or volume snapshot tagged with it); "
                              "take a new one")

    def _snapshot_now(self, conn, snapshot_id: str, expected: int | None, busy: list | None = None
                      ) -> Snapshot | None:
        """The Doppel snapshot as its images and volume snapshots are now; None when it has no part."""
        images = self._images(conn, {TAG_SNAPSHOT: snapshot_id})
        volume_snapshots = self._volume_snapshots(conn, {TAG_SNAPSHOT: snapshot_id})
        if not images and not volume_snapshots:
            return None
        first = images[0].properties if images else volume_snapshots[0].metadata
        tags = {k: v for k, v in sdk.doppel_tags(first).items() if k not in (TAG_COMPONENT, TAG_SERVER)}
        components, waiting, failed = [], list(busy or ()), []
        for image in images:
            name = image.properties.get(TAG_COMPONENT, image.name)
            components.append(ComponentSnapshot("image", name, image.id, int(image.size or 0)))
            state = self._image_state(conn, image)
            (failed if state == SNAPSHOT_FAILED else waiting if state == SNAPSHOT_IN_PROGRESS else []).append(
                f"image of server {name} is {image.status}")
        for snap in volume_snapshots:
            name = snap.metadata.get(TAG_COMPONENT, snap.name)
            components.append(ComponentSnapshot("volume", name, snap.id, int(snap.size or 0) * 2 ** 30))
            if snap.status in VOLUME_SNAPSHOT_FAILED:
                failed.append(f"snapshot of volume {name} is {snap.status}")
            elif snap.status != "available":
                waiting.append(f"snapshot of volume {name} is {snap.status}")
        status, reason = SNAPSHOT_COMPLETE, ""
        if failed:
            status, reason = SNAPSHOT_FAILED, "; ".join(failed) + " (see the nova-compute / cinder-volume logs)"
        elif waiting:
            status, reason = SNAPSHOT_IN_PROGRESS, "; ".join(waiting)
        elif expected is not None and len(components) < expected:
            status, reason = SNAPSHOT_IN_PROGRESS, f"{len(components)} of {expected} parts started"
        created = min((sdk.when(part.created_at) for part in [*images, *volume_snapshots]),
                      default=datetime.now(UTC))
        spec = self.productions.get(tags.get(TAG_PRODUCTION, ""))
        if status == SNAPSHOT_IN_PROGRESS and spec is not None:
            age = datetime.now(UTC) - created
            if age.total_seconds() > spec["snapshot_timeout_minutes"] * 60:
                status, reason = SNAPSHOT_FAILED, (
                    f"not complete {age.total_seconds() / 60:.0f} minutes after it started ({reason}); "
                    f"productions.{tags.get(TAG_PRODUCTION)}.snapshot_timeout_minutes is "
                    f"{spec['snapshot_timeout_minutes']} (see the nova-compute / cinder-volume logs)")
        return Snapshot(id=snapshot_id, production=tags.get(TAG_PRODUCTION, ""), env=tags.get(TAG_ENV, ""),
                        created=created, components=tuple(sorted(components, key=lambda c: (c.kind, c.name))),
                        tags=tags, status=status, status_reason=reason)

    def _image_state(self, conn, image) -> str:
        """COMPLETE when active. Nova's fake virt driver never uploads, leaving the image queued: then the
        source server's task state says when Nova is done with the snapshot."""
        if image.status == "active":
            return SNAPSHOT_COMPLETE
        if image.status in IMAGE_FAILED:
            return SNAPSHOT_FAILED
        server_id = image.properties.get(TAG_SERVER) or image.properties.get("instance_uuid")
        if image.status == "queued" and server_id:
            server = conn.compute.find_server(server_id, ignore_missing=True)
            if server is not None and server.task_state is None:
                return SNAPSHOT_COMPLETE
        return SNAPSHOT_IN_PROGRESS

    def delete_snapshot(self, snapshot_id: str, ignore_missing: bool = True) -> None:
        """Delete every image and volume snapshot tagged with the snapshot's id."""
        deleted = 0
        for conn in self._all_conns():
            for image in self._images(conn, {TAG_SNAPSHOT: snapshot_id}):
                conn.image.delete_image(image.id, ignore_missing=True)
                deleted += 1
            for snap in self._volume_snapshots(conn, {TAG_SNAPSHOT: snapshot_id}):
                conn.block_storage.delete_snapshot(snap.id, ignore_missing=True)
                deleted += 1
        if not deleted and not ignore_missing:
            raise ResourceMissing(f"there is no snapshot {snapshot_id} to delete")

    def _images(self, conn, tag_filter: Mapping[str, str]) -> list:
        return [i for i in conn.image.images() if sdk.doppel_tags(i.properties) and
                tags_match(sdk.doppel_tags(i.properties), tag_filter)]

    def _volume_snapshots(self, conn, tag_filter: Mapping[str, str]) -> list:
        return [s for s in conn.block_storage.snapshots(details=True) if sdk.doppel_tags(s.metadata) and
                tags_match(sdk.doppel_tags(s.metadata), tag_filter) and s.status != "deleting"]
