"""Backups of AWS environments and productions: what it takes to rebuild the stack, as files.

A backup of `env` (or of a production) is the archive every backup is (clouds.backups), made
from `<state_dir>/backup-sources/<name>/aws/`, written afresh each time:

    stack.json         the stack: name, id, status, region, production, env, tags, when made
    template.json      the template CloudFormation ran (its body as CloudFormation returns it)
    parameters.json    its parameters; Doppel-generated credentials only by their placeholder
                       ({secrets.NAME}: a rebuild makes fresh ones), NoEcho and secret-named
                       values masked
    outputs.json       the stack's outputs (the endpoints), secrets masked
    resources.json     its resources: logical id, type, physical id, status
    images.json        each AMI it boots from: id, name, state, component, EBS snapshots
    db_snapshots.json  each RDS snapshot it was made from: identifier, DB instance, engine,
                       storage, status

and beside them, as in every backup (the same layout as an OpenStack backup's), the dump of
each database the production's `databases:` names, read at the address the stack's outputs
give. Disks are not in the archive, only the references to the images and snapshots they
came from (docs/aws.md says how to restore by hand).
"""
from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from clouds.aws import api
from clouds.backups.description import write_description
from clouds.databases.copies import backup_entry
from core.cloud import TAG_PRODUCTION, TAG_SNAPSHOT, BackupSource, ResourceMissing
from core.secrets import MASK, scrub, secret_values
from schemas.openstack import parameter_placeholders

FOLDER = "aws"
NO_ECHO = "****"  # what CloudFormation shows for a NoEcho parameter


class BackupVerbs:
    """`backup_source` of `AwsDriver` (clouds.aws.driver): it gives it `_spec`, `_clients`, `stack_status` and the
    snapshot parts (`_images`, `_db_snapshots`)."""

    state_dir: Path | None = None

    def backup_source(self, env_or_production: str) -> BackupSource:
        """Write the description of the env's (or production's) stack, and back that directory up."""
        name = env_or_production
        if name in self.productions:
            spec = self.productions[name]
            clients = self._clients(spec)
            raw = self._raw_stack(clients, name, spec["stack"])
            description = {"stack.json": _stack_json(raw, clients.region, "production", name, name, "")}
        else:
            found = self.stack_status(name)
            if found is None or not found.complete:
                state = "has no stack" if found is None else f"is {found.status}"
                raise ResourceMissing(f"env {name} {state}, so there is nothing to back up", env=name)
            production, snapshot = found.tags.get(TAG_PRODUCTION, ""), found.tags.get(TAG_SNAPSHOT, "")
            spec = self._spec(production, name)
            clients = self._clients(spec)
            raw = self._raw_stack(clients, name, found.id)
            description = {
                "stack.json": _stack_json(raw, clients.region, "environment", name, production, snapshot),
                "images.json": [_image(i) for i in self._images(clients, snapshot)] if snapshot else [],
                "db_snapshots.json": [_db_snapshot(s) for s in self._db_snapshots(clients, snapshot)]
                if snapshot else [],
            }
        body = api.call(name, f"read the template of stack {raw['StackName']}", lambda: clients.cloudformation
                        .get_template(StackName=raw["StackId"])["TemplateBody"])
        resources = api.call(name, f"list the resources of stack {raw['StackName']}", lambda: clients.cloudformation
                             .describe_stack_resources(StackName=raw["StackId"])["StackResources"])
        outputs = api.outputs_of(raw)
        description.update({
            "template.json": body,
            "parameters.json": _parameters(raw.get("Parameters") or (), _generated(spec)),
            "outputs.json": scrub(outputs, secret_values()),
            "resources.json": sorted(({"logical_id": r["LogicalResourceId"], "type": r["ResourceType"],
                                       "physical_id": r.get("PhysicalResourceId"), "status": r.get("ResourceStatus")}
                                      for r in resources), key=lambda r: r["logical_id"]),
        })
        production = name if name in self.productions else api.tag_dict(raw.get("Tags")).get(TAG_PRODUCTION, "")
        # and beside the description, each of its databases, dumped at the address its outputs give, in the
        # layout of every backup's databases (clouds.backups), so one restore serves every cloud
        servers = tuple(backup_entry(database, outputs, name, production) for database in spec["databases"])
        return BackupSource(root=write_description(self._sources_dir(), name, FOLDER, description), servers=servers)

    def discard_backup_source(self, name: str) -> None:
        """Remove what backup_source wrote for `name` (the env is deleted; its backup is in the store)."""
        import shutil
        if self.state_dir is not None:
            shutil.rmtree(self._sources_dir() / name, ignore_errors=True)

    def _raw_stack(self, clients, name: str, stack: str) -> dict:
        return api.call(name, f"read stack {stack}",
                        lambda: clients.cloudformation.describe_stacks(StackName=stack)["Stacks"][0])

    def _sources_dir(self) -> Path:
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="doppel-aws-"))
        return Path(self.state_dir) / "backup-sources"


def _stack_json(raw: Mapping, region: str, kind: str, name: str, production: str, snapshot: str) -> dict:
    return {"kind": kind, "name": raw["StackName"], "id": raw["StackId"], "status": raw.get("StackStatus"),
            "region": region, "env": name if kind == "environment" else None, "production": production,
            "created": str(raw.get("CreationTime") or ""), "tags": api.tag_dict(raw.get("Tags")), "snapshot": snapshot}


def _generated(spec: Mapping) -> dict[str, str]:
    """Parameters whose values Doppel generates for each environment: name -> their placeholder."""
    return {name: value for name, value in spec["parameters"].items()
            if any(p.strip().startswith("secrets.") for p in parameter_placeholders(value))}


def _parameters(listed, generated: Mapping[str, str]) -> dict:
    kept, masked = {}, []
    for item in listed:
        name, value = item["ParameterKey"], item.get("ParameterValue")
        if name in generated:
            continue
        if value == NO_ECHO:
            masked.append(name)
            value = MASK
        kept[name] = value
    kept = scrub(kept, secret_values())
    masked += [name for name, value in kept.items() if value == MASK and name not in masked]
    return {"parameters": dict(sorted(kept.items())), "generated": dict(sorted(generated.items())),
            "masked": sorted(masked)}


def _image(image: Mapping) -> dict:
    return {"id": image["ImageId"], "name": image.get("Name"), "state": image.get("State"),
            "component": api.tag_dict(image.get("Tags")).get("doppel-component"),
            "ebs_snapshots": [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", ())
                              if m.get("Ebs", {}).get("SnapshotId")]}


def _db_snapshot(snap: Mapping) -> dict:
    return {"id": snap["DBSnapshotIdentifier"], "db_instance": snap.get("DBInstanceIdentifier"),
            "component": api.tag_dict(snap.get("TagList")).get("doppel-component"), "engine": snap.get("Engine"),
            "allocated_storage_gb": snap.get("AllocatedStorage"), "status": snap.get("Status")}
