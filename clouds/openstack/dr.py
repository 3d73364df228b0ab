"""An OpenStack DR target (`dr.<production>.target.driver: openstack`): the DR side kept ready, and its stack.

The DR side is a cloud of clouds.yaml, a region and a project (`target.cloud`, `target.region`; production's by
default), which sees nothing of production's project unless it is copied there:

    images   dr_copy_images streams each image production's servers boot from out of production's Glance into
             the DR project's (md5 and sha512 checked against the source's), skipped when the DR project has an
             active image of that checksum; `<production>/dr-images.json` in the DR container says which DR image
             stands for which server, so a failover needs nothing of production's side.
    backup   dr_copy_backup copies a backup's archive and manifest into the DR project's Swift (container
             `target.container`, doppel-dr-backups by default), the sha256 checked as it streams, the manifest
             last; a restore in DR reads only that copy.
    stack    dr_stack creates doppel-<target.env> in the DR project from production's template (or
             `target.template`), production's parameters with `target.parameters` over them, the images filled
             with the DR copies and fresh secrets; nothing exists there until a failover asks.
    restore  dr_restore loads the backup's databases where the DR stack's outputs say (never production's own),
             and copies its file trees with rsync onto the DR stack's servers (their addresses from its outputs,
             the host key pinned: clouds.openstack.file_trees); dr_probe checks the databases' tables hold the
             backup's rows; dr_delete drops them and deletes the stack.
"""
from __future__ import annotations

import json
import logging
import secrets as _secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

from clouds.backups.copy import HashingReader as _Reader
from clouds.backups.copy import copy_backup
from clouds.backups.manifests import find_backup
from clouds.backups.restore import restore
from clouds.backups.server_restore import check
from clouds.databases.copies import drop_databases, locate, same_database
from clouds.databases.servers import DatabaseError, Server
from clouds.openstack import sdk
from clouds.openstack.file_trees import host_key_values
from clouds.openstack.resources import HEAT_TAG, heat_tag_env, stack_name
from clouds.openstack.template import DOPPEL_PARAMETERS, load_template, render_parameters
from core.cloud import DELETE_IN_PROGRESS, TAG_PRODUCTION, DriverError, Stack, env_tags

log = logging.getLogger(__name__)
CHUNK = 1 << 20
CONTAINER = "doppel-dr-backups"
IMAGES_OBJECT = "dr-images.json"


class DrVerbs:
    """The DR-target verbs of `OpenStackDriver` (core.cloud.DrTargetDriver), which gives them its productions,
    connections (`_conn`), production's parts and stacks (`_stack`)."""

    def _dr_side(self, production: str, target: Mapping) -> tuple[dict, object, str]:
        """Production's spec, a connection to the DR side, and where it is (for messages)."""
        spec = self._spec(production, target["env"])
        where = {"cloud": target.get("cloud") or spec["cloud"], "region": target.get("region") or spec.get("region")}
        return spec, self._conn(where), f"cloud {where['cloud']} region {where['region'] or '-'}"

    def _dr_store(self, production: str, target: Mapping):
        from clouds.stores.swift import SwiftStore
        spec = self._spec(production, target["env"])
        return SwiftStore(target.get("container") or CONTAINER, cloud=target.get("cloud") or spec["cloud"],
                          region_name=target.get("region") or spec.get("region"))

    # --- sync: images ---------------------------------------------------------------------

    def dr_copy_images(self, production: str, target: Mapping) -> dict[str, str]:
        spec, dr, where = self._dr_side(production, target)
        conn, env = self._conn(spec), target["env"]
        servers, _ = self._production_parts(conn, production, spec, env)
        project = dr.current_project_id
        record, done = {}, {}
        for component, server_id in servers:
            server = sdk.call(env, f"read production {production}'s server {component}",
                              lambda: conn.compute.get_server(server_id))  # noqa: B023 - runs at once
            image_id = (server.image or {}).get("id")
            if not image_id:
                continue  # booted from a volume: nothing in Glance to copy
            source = sdk.call(env, f"read image {image_id}", lambda: conn.image.get_image(image_id))  # noqa: B023
            kept = next((i for i in sdk.call(env, f"list the images of the DR project ({where})",
                                             lambda: list(dr.image.images(owner=project)))
                         if i.checksum == source.checksum and i.status == "active"
                         and (i.properties or {}).get("doppel-production") == production), None)
            if kept is not None:
                done[component] = f"kept {kept.id}"
            else:
                kept = self._copy_image(conn, dr, source, production, component, env, where)
                done[component] = f"copied {kept.id}"
            record[component] = {"id": kept.id, "checksum": source.checksum, "source": source.id}
        self._dr_store(production, target).put_bytes(f"{production}/{IMAGES_OBJECT}",
                                                     json.dumps(record, sort_keys=True).encode())
        return done

    def _copy_image(self, conn, dr, source, production: str, component: str, env: str, where: str):
        """Stream `source` out of production's Glance into the DR project's, both checksums checked."""
        log.info("DR of %s: copying image %s (%s, %s bytes) to %s", production, source.id, component, source.size,
                 where)
        made = sdk.call(env, f"create the DR copy of image {source.id}", lambda: dr.image.post("/images", json={
            "name": f"doppel-dr-{production}-{component}", "disk_format": source.disk_format,
            "container_format": source.container_format, "visibility": "private",
            "doppel-production": production, "doppel-component": component,
            "doppel-source-image": source.id}).json())
        try:
            response = conn.image.download_image(source, stream=True)
            reader = _Reader(response.iter_content(CHUNK), "md5", "sha512")
            answer = dr.image.put(f"/images/{made['id']}/file", data=iter(reader),
                                  headers={"Content-Type": "application/octet-stream"}, raise_exc=False)
            if answer.status_code >= 400:
                raise DriverError(f"Glance in {where} refused image {source.id}'s data ({answer.status_code}: "
                                  f"{answer.text[:200]}); the sync is retried", env=env)
            copy = dr.image.get_image(made["id"])
            if reader.hex("md5") != source.checksum or copy.checksum != source.checksum:
                raise DriverError(f"the copy of image {source.id} ({component}) to {where} does not match: md5 "
                                  f"{source.checksum} at the source, {reader.hex('md5')} read, {copy.checksum} "
                                  "stored; the sync is retried", env=env)
            if source.hash_value and source.hash_algo == "sha512" and reader.hex("sha512") != source.hash_value:
                raise DriverError(f"image {source.id}'s sha512 does not match its os_hash_value; the sync is retried",
                                  env=env)
            return copy
        except Exception:
            dr.image.delete_image(made["id"], ignore_missing=True)  # never a half-copied image in DR
            raise

    # --- sync: the backup -----------------------------------------------------------------

    def dr_copy_backup(self, production: str, target: Mapping, backup_id: str, source) -> str:
        return copy_backup(source, self._dr_store(production, target), production, backup_id, target["env"])

    def dr_describe(self, production: str, target: Mapping) -> dict:
        _, dr, where = self._dr_side(production, target)
        store = self._dr_store(production, target)
        try:
            images = {name: entry["id"] for name, entry in
                      json.loads(store.get_bytes(f"{production}/{IMAGES_OBJECT}")).items()}
        except KeyError:
            images = {}
        return {"where": where, "stack": self._stack(dr, target["env"]), "images": images, "store": store.name}

    # --- failover: the stack --------------------------------------------------------------

    def dr_stack(self, production: str, target: Mapping, key: str | None) -> Stack | None:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        found = self._stack(dr, env)
        if key is None or (found is not None and found.status != DELETE_IN_PROGRESS):
            return found
        images = self._dr_images(production, target, dr, where)
        template = load_template(target.get("template") or spec["template"], production=production, env=env)
        values = render_parameters(
            {**spec["parameters"], **(target.get("parameters") or {})}, images=images, volume_snapshots={},
            secrets={name: _secrets.token_urlsafe(24) for name in spec["clone"]["secrets"]}, config_url="",
            env=env, production=production, host_keys=host_key_values(spec, production, env=env))
        tags = env_tags(env, key, **{TAG_PRODUCTION: production})
        values.update({parameter: tags.get(tag, "") for parameter, tag in DOPPEL_PARAMETERS.items()})
        log.info("DR of %s: creating stack %s in %s", production, stack_name(env), where)
        try:
            dr.orchestration.create_stack(name=stack_name(env), template=template, parameters=values,
                                          timeout_mins=spec["stack_timeout_minutes"],
                                          tags=",".join([HEAT_TAG, heat_tag_env(env), "doppel-dr"]))
        except Exception as exc:  # noqa: BLE001 - Heat's refusal is the user's answer
            if sdk.status_code(exc) == 409:
                return self._stack(dr, env)
            if sdk.status_code(exc) == 400:
                raise DriverError(f"Heat in {where} refused the DR stack {stack_name(env)}: {sdk.heat_message(exc)};"
                                  f" fix dr.{production}.target (parameters, template) or what the DR project "
                                  "lacks", env=env, permanent=True) from None
            raise sdk.transient(env, f"create the DR stack {stack_name(env)} in {where}", exc) from None
        return self._stack(dr, env)

    def _dr_images(self, production: str, target: Mapping, dr, where: str) -> dict[str, str]:
        """Server name -> the DR copy of the image it boots, as the last sync recorded (checked active)."""
        try:
            record = json.loads(self._dr_store(production, target).get_bytes(f"{production}/{IMAGES_OBJECT}"))
        except KeyError:
            record = {}
        images = {}
        for component, entry in record.items():
            image = dr.image.find_image(entry["id"], ignore_missing=True)
            if image is None or image.status != "active" or image.checksum != entry["checksum"]:
                raise DriverError(f"the DR copy of production {production}'s image for {component} ({entry['id']}) "
                                  f"is gone from {where}; run a sync (`doppel publish sync.due`) first",
                                  env=target["env"], permanent=True)
            images[component] = image.id
        if not images:
            raise DriverError(f"no image of production {production} was copied to {where} yet; a sync copies them "
                              "(schedule sync.due)", env=target["env"], permanent=True)
        return images

    # --- failover: restore and probe ------------------------------------------------------

    def _dr_targets(self, production: str, target: Mapping, manifest) -> tuple[Stack, dict]:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        stack = self._stack(dr, env)
        if stack is None or not stack.complete:
            raise DriverError(f"the DR stack of {production} in {where} is "
                              f"{stack.status if stack else 'missing'}; nothing can be restored into it", env=env)
        dumped = {c.name: c for c in manifest.server_databases}
        targets = {}
        for database in spec["databases"]:
            server, name = locate(database, stack.outputs, env, production)
            theirs = dumped.get(database["name"])
            if theirs is not None and theirs.server and same_database(
                    (server, name), (Server.from_dict(theirs.server), theirs.database)):
                raise DriverError(f"the DR stack's database {database['name']} would be production's own "
                                  f"({name} on {server.where}); fix the DR template's outputs", env=env,
                                  permanent=True)
            targets[database["name"]] = {"kind": database["kind"], "server": server.to_dict(), "database": name}
        return stack, targets

    def dr_restore(self, production: str, target: Mapping, backup_id: str) -> list[str]:
        store = self._dr_store(production, target)
        manifest = find_backup(store, backup_id, production)
        stack, targets = self._dr_targets(production, target, manifest)
        scratch = Path(self._sources_dir()).parent / "dr-restores" / target["env"]
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            restore(store, manifest, scratch, databases=targets)
            # each tree onto the DR stack's server, found through its outputs; a server presenting another host
            # key than the pinned one is refused (HostKeyChanged) before anything is copied
            trees = self.restore_file_trees(target["env"], scratch, production=production, outputs=stack.outputs)
        except DatabaseError as exc:
            raise DriverError(f"cannot restore backup {backup_id} into the DR stack of {production}: {exc}",
                              env=target["env"]) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return sorted(targets) + [f"files {tree}" for tree in trees]

    def dr_probe(self, production: str, target: Mapping, backup_id: str) -> list[str]:
        manifest = find_backup(self._dr_store(production, target), backup_id, production)
        _, targets = self._dr_targets(production, target, manifest)
        problems = []
        for component in manifest.server_databases:
            where = targets.get(component.name)
            if where is None:
                problems.append(f"database {component.name} has no place in the DR stack")
                continue
            server = Server.from_dict(where["server"])
            try:
                problems += check(manifest, component, server, where["database"])
            except DatabaseError as exc:
                problems.append(f"database {component.name}: {exc}")
        return problems

    # --- failback, compensation -----------------------------------------------------------

    def dr_delete(self, production: str, target: Mapping) -> bool:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        stack = self._stack(dr, env)
        if stack is None:
            return False
        drop_databases(spec["databases"], env=env, production=production, outputs=stack.outputs,
                       production_outputs=lambda: self._production_outputs(self._conn(spec), production, spec,
                                                                           production),
                       keep_when_unreadable=True)
        self._discard_file_trees(env)  # what a failback pulled from the DR servers
        if stack.status != DELETE_IN_PROGRESS:
            log.info("DR of %s: deleting stack %s in %s", production, stack.name, where)
            sdk.call(env, f"delete the DR stack {stack.name}",
                     lambda: dr.orchestration.delete_stack(stack.id, ignore_missing=True))
        return True

