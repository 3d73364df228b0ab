"""An AWS DR target (`dr.<production>.target.driver: aws`): the DR region kept ready, and its stack.

The DR side is another region of the account boto3's chain reaches (`target.region`, `target.profile`), which
holds nothing of production's until a sync copies it there:

    images   dr_copy_images copies each AMI production's instances boot from into the DR region (EC2 CopyImage,
             a ClientToken derived from production, instance and source AMI; the copy tagged doppel-production,
             doppel-component, doppel-source-image and named after them), kept when the DR region has that copy
             already (found by its tags, or by its name if the tags never made it), so a second sync keeps the
             same AMI id; `<production>/dr-images.json` in the DR bucket says which DR AMI stands for which
             instance, so a failover needs nothing of production's region.
    backup   dr_copy_backup copies a backup's archive and manifest into the S3 bucket `target.bucket` (default
             doppel-dr-backups) in the DR region, the sha256 checked as it streams, the manifest last
             (clouds.backups.copy, as the OpenStack target does); a restore in DR reads only that copy.
    stack    dr_stack creates the CloudFormation stack doppel-<target.env> in the DR region from production's
             template (or `target.template`), production's parameters with `target.parameters` over them (only
             those the DR template declares), `{snapshot.image.X}` filled with the DR copies and fresh secrets;
             OnFailure=DO_NOTHING, so a failed stack's events say why before the failover's compensation
             deletes it. Nothing exists there until a failover asks.

The restore, probe, deletion and failback are clouds.aws.dr_data's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets as _secrets
from collections.abc import Mapping

from clouds.aws import api
from clouds.aws.stacks import render, stack_name
from clouds.backups.copy import copy_backup
from core.cloud import DELETE_IN_PROGRESS, TAG_PRODUCTION, DriverError, Stack, env_tags

log = logging.getLogger(__name__)
BUCKET = "doppel-dr-backups"
IMAGES_OBJECT = "dr-images.json"
TAG_DR = "doppel-dr"
TAG_COMPONENT, TAG_SOURCE = "doppel-component", "doppel-source-image"
IMAGE_GONE = ("failed", "invalid", "error", "deregistered")


class DrVerbs:
    """The DR-target verbs of `AwsDriver` (core.cloud.DrTargetDriver), which gives them `_spec`, `_clients`,
    `_stack` and production's parts (`_production_parts`)."""

    def _dr_side(self, production: str, target: Mapping) -> tuple[dict, object, str]:
        """Production's spec, clients in the DR region, and where that is (for messages)."""
        spec = self._spec(production, target["env"])
        place = {"region": target.get("region") or spec["region"], "profile": target.get("profile") or
                 spec.get("profile")}
        return spec, self._clients(place), f"AWS region {place['region']}"

    def _dr_store(self, production: str, target: Mapping):
        from clouds.stores.s3 import S3Store
        spec = self._spec(production, target["env"])
        return S3Store(target.get("bucket") or BUCKET, region_name=target.get("region") or spec["region"],
                       profile_name=target.get("profile") or spec.get("profile"))

    # --- sync: images ---------------------------------------------------------------------

    def dr_copy_images(self, production: str, target: Mapping) -> dict[str, str]:
        spec, dr, where = self._dr_side(production, target)
        home, env = self._clients(spec), target["env"]
        instances, _ = self._production_parts(home, production, spec, env)
        record, done = {}, {}
        for component, instance_id in instances:
            raw = api.call(env, f"read production {production}'s instance {component}", lambda i=instance_id: home
                           .ec2.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0])
            source = raw.get("ImageId")
            if not source:
                continue
            kept = self._dr_copy_of(dr, production, component, source, env)
            if kept is not None:
                done[component] = f"kept {kept}"
            else:
                kept = self._copy_image(home, dr, production, component, source, env, where)
                done[component] = f"copied {kept}"
            record[component] = {"id": kept, "source": source, "source_region": home.region}
        self._dr_store(production, target).put_bytes(f"{production}/{IMAGES_OBJECT}",
                                                     json.dumps(record, sort_keys=True).encode())
        return done

    def _dr_copy_of(self, dr, production: str, component: str, source: str, env: str) -> str | None:
        """The DR region's copy of `source` for this instance, if one is there and not failed."""
        by_tags = [{"Name": f"tag:{TAG_PRODUCTION}", "Values": [production]},
                   {"Name": f"tag:{TAG_COMPONENT}", "Values": [component]},
                   {"Name": f"tag:{TAG_SOURCE}", "Values": [source]}]
        for filters in (by_tags, [{"Name": "name", "Values": [_copy_name(production, component, source)]}]):
            found = [i for i in api.call(env, "list the DR copies of production's images", lambda f=filters: dr
                                         .ec2.describe_images(Owners=["self"], Filters=f)["Images"])
                     if i.get("State") not in IMAGE_GONE]
            if found:
                if filters is not by_tags:  # copied, but the tags never made it: tag it now
                    self._tag_copy(dr, found[0]["ImageId"], production, component, source, env)
                return found[0]["ImageId"]
        return None

    def _copy_image(self, home, dr, production: str, component: str, source: str, env: str, where: str) -> str:
        log.info("DR of %s: copying AMI %s (%s) from %s to %s", production, source, component, home.region, where)
        token = hashlib.sha256(f"{production}/{component}/{source}".encode()).hexdigest()[:60]
        made = api.call(env, f"copy AMI {source} into {where}", lambda: dr.ec2.copy_image(
            SourceImageId=source, SourceRegion=home.region, Name=_copy_name(production, component, source),
            Description=f"Doppel's DR copy of production {production}'s {component}", ClientToken=token))["ImageId"]
        self._tag_copy(dr, made, production, component, source, env)
        return made

    def _tag_copy(self, dr, image_id: str, production: str, component: str, source: str, env: str) -> None:
        tags = {TAG_PRODUCTION: production, TAG_COMPONENT: component, TAG_SOURCE: source, TAG_DR: "true"}
        api.call(env, f"tag the DR copy {image_id}", lambda: dr.ec2.create_tags(Resources=[image_id],
                                                                                Tags=api.tag_list(tags)))

    def _dr_images(self, production: str, target: Mapping, dr, where: str) -> dict[str, str]:
        """Instance name -> the DR copy of the AMI it boots, as the last sync recorded (checked available)."""
        env = target["env"]
        record = self._dr_record(production, target)
        if not record:
            raise DriverError(f"no image of production {production} was copied to {where} yet; a sync copies them "
                              "(schedule sync.due)", env=env, permanent=True)
        ids = sorted({entry["id"] for entry in record.values()})
        try:
            found = {i["ImageId"]: i for i in dr.ec2.describe_images(ImageIds=ids)["Images"]}
        except Exception as exc:  # noqa: BLE001
            if "NotFound" not in api.code_of(exc):
                raise api.error(env, f"read the DR copies of production {production}'s images", exc) from None
            found = {}
        images = {}
        for component, entry in record.items():
            state = found.get(entry["id"], {}).get("State", "gone")
            if state in IMAGE_GONE or state == "gone":
                raise DriverError(f"the DR copy of production {production}'s image for {component} ({entry['id']}) "
                                  f"is {state} in {where}; run a sync (`doppel publish sync.due`) first", env=env,
                                  permanent=True)
            if state != "available":
                raise DriverError(f"the DR copy {entry['id']} of {component} is {state} in {where}; the failover "
                                  "waits for it", env=env)
            images[component] = entry["id"]
        return images

    def _dr_record(self, production: str, target: Mapping) -> dict:
        try:
            return json.loads(self._dr_store(production, target).get_bytes(f"{production}/{IMAGES_OBJECT}"))
        except KeyError:
            return {}

    # --- sync: the backup -----------------------------------------------------------------

    def dr_copy_backup(self, production: str, target: Mapping, backup_id: str, source) -> str:
        return copy_backup(source, self._dr_store(production, target), production, backup_id, target["env"])

    def dr_describe(self, production: str, target: Mapping) -> dict:
        _, dr, where = self._dr_side(production, target)
        images = {name: entry["id"] for name, entry in self._dr_record(production, target).items()}
        return {"where": where, "stack": self._stack(dr, target["env"]), "images": images,
                "store": self._dr_store(production, target).name}

    # --- failover: the stack --------------------------------------------------------------

    def dr_stack(self, production: str, target: Mapping, key: str | None) -> Stack | None:
        spec, dr, where = self._dr_side(production, target)
        env = target["env"]
        found = self._stack(dr, env)
        if key is None or (found is not None and found.status != DELETE_IN_PROGRESS):
            return found
        images = self._dr_images(production, target, dr, where)
        body = api.read_template(target.get("template") or spec["template"],
                                 what=f"the DR template of production {production}",
                                 fix=f"dr.{production}.target.template", env=env)
        declared = self._declared(dr, body, production, env, where)
        wanted = {name: value for name, value in {**spec["parameters"], **(target.get("parameters") or {})}.items()
                  if name in declared}
        values = render(wanted, env=env, production=production,
                        parts={f"snapshot.image.{name}": image for name, image in images.items()},
                        secrets={name: _secrets.token_urlsafe(24) for name in spec["clone"]["secrets"]})
        tags = {**env_tags(env, key, **{TAG_PRODUCTION: production}), TAG_DR: "true"}
        log.info("DR of %s: creating stack %s in %s", production, stack_name(env), where)
        try:
            dr.cloudformation.create_stack(
                StackName=stack_name(env), TemplateBody=body, OnFailure="DO_NOTHING",
                Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(values.items())],
                Tags=api.tag_list(tags), ClientRequestToken=api.request_token(key, prefix="doppel-dr-"),
                TimeoutInMinutes=spec["stack_timeout_minutes"], Capabilities=["CAPABILITY_IAM"])
        except Exception as exc:  # noqa: BLE001 - CloudFormation's refusal is the user's answer
            if api.code_of(exc) == "AlreadyExistsException":
                return self._stack(dr, env)
            if api.status_of(exc) == 400:
                raise _refused(production, env, where, api.message_of(exc)) from None
            raise api.error(env, f"create the DR stack {stack_name(env)} in {where}", exc) from None
        return self._stack(dr, env)

    def _declared(self, dr, body: str, production: str, env: str, where: str) -> set[str]:
        """The parameters the DR template declares (CloudFormation's own reading of it)."""
        try:
            answer = dr.cloudformation.get_template_summary(TemplateBody=body)
        except Exception as exc:  # noqa: BLE001
            if api.status_of(exc) == 400:
                raise _refused(production, env, where, api.message_of(exc)) from None
            raise api.error(env, f"read the DR template's parameters in {where}", exc) from None
        return {p["ParameterKey"] for p in answer.get("Parameters") or ()}


def _copy_name(production: str, component: str, source: str) -> str:
    return f"doppel-dr-{production}-{component}-{source}"[:128]


def _refused(production: str, env: str, where: str, message: str) -> DriverError:
    return DriverError(f"CloudFormation in {where} refused the DR stack {stack_name(env)}: {message}; fix "
                       f"dr.{production}.target (parameters, template)", env=env, permanent=True)
