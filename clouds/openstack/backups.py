"""Backups of OpenStack environments and productions: what it takes to rebuild the stack, as files.

A backup of `env` (or of a production) is the archive every backup is
(clouds.backups), made from a directory this module writes afresh each time,
`<state_dir>/backup-sources/<name>/`, holding under `openstack/`:

    stack.json             the stack: name, id, status, production, env, tags, when made
    template.yaml          the HOT template Heat ran (with Doppel's own parameters)
    parameters.json        its parameters; Doppel-generated credentials only by their
                           placeholder ({secrets.NAME}: a rebuild makes fresh ones), and
                           anything hidden or secret-named as [redacted]
    outputs.json           the stack's outputs (the endpoints)
    resources.json         its resources: name, type, physical id
    images.json            each image it boots from: id, name, checksum, os_hash, size,
                           formats, status, and the image it was taken of (base_image_ref)
    volume_snapshots.json  each volume snapshot it was made from: id, volume, size, status
    bundle.json            an environment's config bundle, credentials as placeholders

and beside them, as in every backup, the dump of each database the production's
`databases:` names (PostgreSQL), read at the address the stack's outputs give, and
under `files/<tree>/` each file tree its `files:` names, copied with rsync over SSH
from the server the outputs give, its host key pinned (file_trees.py).

No secret is written: parameters and outputs are scrubbed of secret-named values and
of every secret Doppel holds in its environment (core.secrets), and the bundle's
credential settings are written as the production's templates, not their values.
Disks are not in the archive, only the references and checksums of the images and
snapshots they came from; docs/openstack.md says how to rebuild by hand.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from clouds.backups.description import write_description
from clouds.databases.copies import backup_entry
from clouds.openstack import sdk
from clouds.openstack.resources import BUNDLE_OBJECT, container_name
from core.cloud import TAG_PRODUCTION, TAG_SNAPSHOT, BackupSource, DriverError, ResourceMissing
from core.secrets import MASK, scrub, secret_values
from schemas.openstack import parameter_placeholders
from schemas.openstack_files import is_private_host_key
from schemas.templates import TemplateError, placeholders

FOLDER = "openstack"
HIDDEN = "******"  # what Heat shows for a parameter declared hidden
OUTPUTS = "outputs"  # the unscrubbed outputs beside a description (never written)


class BackupVerbs:
    """`backup_source` of `OpenStackDriver` (clouds.openstack.driver), which gives it its productions,
    connections, stacks (`_stack`), snapshot parts (`_images`, `_volume_snapshots`) and bundle reads."""

    state_dir: Path | None = None

    def backup_source(self, env_or_production: str) -> BackupSource:
        """Write the description of the env's (or production's) stack, and back that directory up."""
        name = env_or_production
        if name in self.productions:
            spec = self.productions[name]
            production, description = name, self._describe_production(self._conn(spec), name, spec)
        else:
            description = self._describe_env(name)
            production = description["stack.json"]["production"]
            spec = self.productions[production]
        outputs = description.pop(OUTPUTS)  # as Heat gives them: the addresses of its databases
        servers = tuple(backup_entry(database, outputs, name, production) for database in spec["databases"])
        root = self._write_source(name, description)
        self._pull_file_trees(spec, outputs, root, name, production)  # files/<tree>/, with rsync (file_trees.py)
        return BackupSource(root=root, servers=servers)

    def discard_backup_source(self, name: str) -> None:
        """Remove what backup_source wrote for `name` (the env is deleted; its backup is in the store)."""
        if self.state_dir is not None:
            shutil.rmtree(self._sources_dir() / name, ignore_errors=True)
            self._discard_file_trees(name)

    # --- environments --------------------------------------------------------------------

    def _describe_env(self, env: str) -> dict:
        found = self.stack_status(env)
        if found is None or not found.complete:
            state = "has no stack" if found is None else f"is {found.status}"
            raise ResourceMissing(f"env {env} {state}, so there is nothing to back up", env=env)
        production = found.tags.get(TAG_PRODUCTION, "")
        spec = self._spec(production, env)
        conn = self._conn(spec)
        raw = sdk.call(env, f"read stack {found.name}", lambda: conn.orchestration.get_stack(found.id))
        generated = _generated_parameters(spec)
        snapshot = found.tags.get(TAG_SNAPSHOT, "")
        images = [_image(conn, env, image.id, component=image.properties.get("doppel-component"))
                  for image in self._images(conn, {TAG_SNAPSHOT: snapshot})] if snapshot else []
        volume_snapshots = [_volume_snapshot(snap) for snap in self._volume_snapshots(conn, {TAG_SNAPSHOT: snapshot})
                            ] if snapshot else []
        return {
            "stack.json": {"kind": "environment", "env": env, "production": production, "name": found.name,
                           "id": found.id, "status": raw.status, "created": str(raw.created_at or ""),
                           "tags": dict(found.tags), "snapshot": snapshot},
            "template.yaml": self._heat_template(conn, env, found.name, found.id),
            "parameters.json": _parameters(raw.parameters or {}, generated),
            "outputs.json": _scrubbed({k: v for k, v in found.outputs.items()}),
            "resources.json": self._heat_resources(conn, env, raw),
            "images.json": sorted(images, key=lambda i: (i.get("component") or "", i["id"])),
            "volume_snapshots.json": sorted(volume_snapshots, key=lambda s: (s.get("component") or "", s["id"])),
            "bundle.json": self._bundle_without_secrets(conn, env, spec),
            OUTPUTS: dict(found.outputs),
        }

    def _bundle_without_secrets(self, conn, env: str, spec: Mapping) -> dict | None:
        """The env's config bundle, its settings that carry credentials written as the production's templates."""
        bundle = self._read_object(conn, container_name(env), BUNDLE_OBJECT)
        if bundle is None:
            return None
        scrubbed = _scrubbed({**bundle, "settings": dict(bundle.get("settings") or {})})
        for key, template in spec["bundle"].items():
            if key in scrubbed["settings"] and _uses_secrets(template):
                scrubbed["settings"][key] = template  # what a rebuild fills with fresh credentials
        return scrubbed

    # --- productions ---------------------------------------------------------------------

    def _describe_production(self, conn, production: str, spec: Mapping) -> dict:
        servers, volumes = self._production_parts(conn, production, spec, production)
        described = {"stack.json": {"kind": "production", "production": production, "stack": spec.get("stack"),
                                    "servers": dict(servers), "volumes": dict(volumes)}, OUTPUTS: {}}
        images = {}
        for name, server_id in servers:
            server = sdk.call(production, f"read production {production}'s server {name}",
                              lambda: conn.compute.get_server(server_id))  # noqa: B023 - runs at once
            image_id = (server.image or {}).get("id")
            if image_id and image_id not in images:
                images[image_id] = _image(conn, production, image_id, component=name)
        described["images.json"] = sorted(images.values(), key=lambda i: (i.get("component") or "", i["id"]))
        described["volumes.json"] = [_volume(conn, production, name, volume_id) for name, volume_id in volumes]
        if spec.get("stack"):
            raw = sdk.call(production, f"find production {production}'s stack",
                           lambda: conn.orchestration.find_stack(spec["stack"], ignore_missing=False))
            raw = sdk.call(production, f"read production {production}'s stack",
                           lambda: conn.orchestration.get_stack(raw.id))
            described["stack.json"].update(name=raw.name, id=raw.id, status=raw.status,
                                           created=str(raw.created_at or ""))
            described["template.yaml"] = self._heat_template(conn, production, raw.name, raw.id)
            described["parameters.json"] = _parameters(raw.parameters or {}, {})
            described[OUTPUTS] = {o["output_key"]: o.get("output_value") for o in (raw.outputs or [])}
            described["outputs.json"] = _scrubbed(described[OUTPUTS])
            described["resources.json"] = self._heat_resources(conn, production, raw)
        return described

    # --- Heat ----------------------------------------------------------------------------

    def _heat_template(self, conn, env: str, name: str, stack_id: str) -> dict:
        response = sdk.call(env, f"read the template of stack {name}",
                            lambda: conn.orchestration.get(f"/stacks/{name}/{stack_id}/template", raise_exc=False))
        if response.status_code >= 400:
            raise DriverError(f"Heat would not give the template of stack {name} ({response.status_code}: "
                              f"{response.text[:200]}); the backup of {env} is retried", env=env)
        return response.json()

    def _heat_resources(self, conn, env: str, raw) -> list[dict]:
        resources = sdk.call(env, f"list the resources of stack {raw.name}",
                             lambda: list(conn.orchestration.resources(raw)))
        return sorted(({"name": r.name, "type": r.resource_type, "physical_id": r.physical_resource_id,
                        "status": r.status} for r in resources), key=lambda r: r["name"])

    # --- the directory -------------------------------------------------------------------

    def _sources_dir(self) -> Path:
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="doppel-openstack-"))
        return Path(self.state_dir) / "backup-sources"

    def _write_source(self, name: str, description: Mapping[str, object]) -> Path:
        """Write the description into a fresh directory and put it in place of the last one, whole."""
        return write_description(self._sources_dir(), name, FOLDER, description)


def _generated_parameters(spec: Mapping) -> dict[str, str]:
    """Template parameters whose value is made for each environment from clone.secrets: name -> placeholder."""
    return {name: value for name, value in spec["parameters"].items()
            if any(used.strip().startswith("secrets.") or is_private_host_key(used)
                   for used in parameter_placeholders(value))}


def _parameters(values: Mapping, generated: Mapping[str, str]) -> dict:
    """The stack's parameters: generated credentials as their placeholders, hidden and secret values masked."""
    kept, masked = {}, []
    for name, value in sorted(values.items()):
        if name.startswith("OS::"):
            continue  # Heat's own (stack name, id, project): not an input
        if name in generated:
            continue
        if value == HIDDEN:
            masked.append(name)
            kept[name] = MASK
        else:
            kept[name] = value
    kept = _scrubbed(kept)
    masked += [name for name, value in kept.items() if value == MASK and name not in masked]
    return {"parameters": kept, "generated": dict(sorted(generated.items())), "masked": sorted(masked)}


def _scrubbed(node):
    """`node` with secret-named values and every secret value Doppel's environment holds masked."""
    return scrub(node, secret_values())


def _uses_secrets(template) -> bool:
    try:
        return any(root == "secrets" for root, _ in placeholders(template))
    except TemplateError:
        return False


def _image(conn, env: str, image_id: str, component: str | None) -> dict:
    image = sdk.call(env, f"read image {image_id}", lambda: conn.image.find_image(image_id, ignore_missing=True))
    if image is None:
        return {"id": image_id, "component": component, "status": "missing"}
    properties = image.properties or {}
    return {"id": image.id, "name": image.name, "component": component, "status": image.status,
            "checksum": image.checksum, "os_hash_algo": image.hash_algo, "os_hash_value": image.hash_value,
            "size": image.size, "disk_format": image.disk_format, "container_format": image.container_format,
            "base_image_ref": properties.get("base_image_ref"), "server": properties.get("doppel-server")}


def _volume_snapshot(snap) -> dict:
    return {"id": snap.id, "name": snap.name, "component": (snap.metadata or {}).get("doppel-component"),
            "volume_id": snap.volume_id, "size_gb": snap.size, "status": snap.status}


def _volume(conn, production: str, name: str, volume_id: str) -> dict:
    volume = sdk.call(production, f"read production {production}'s volume {name}",
                      lambda: conn.block_storage.get_volume(volume_id))
    return {"name": name, "id": volume.id, "size_gb": volume.size, "status": volume.status,
            "volume_type": volume.volume_type}

