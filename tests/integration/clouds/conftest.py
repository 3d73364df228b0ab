"""The chain's behaviour that is the same on every cloud, and one test bed per cloud driver to run it on.

`bed` is parametrised over the drivers: the openstack bed is tests/services/openstack.sh's control plane
(Heat, Nova-fake, Glance, Cinder, Swift behind Keystone), the aws bed moto's server (tests/services/moto.sh:
CloudFormation, EC2, RDS, S3). Each bed answers the same questions in its cloud's own terms (what the
environment's stack was made from, which of its resources are left, the credentials it was given), so
tests/integration/clouds/test_chains.py states each behaviour once. What only one cloud does (Heat's
notifications, Swift behind Keystone, Route 53) stays in tests/integration/<cloud>/.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.integration.aws import conftest as aws
from tests.integration.aws.conftest import aws_env  # noqa: F401 - a fixture: boto3 pointed at moto
from tests.integration.openstack import conftest as openstack
from tests.support.waiting import wait_for


class OpenStackBed:
    name = "openstack"
    production = openstack.PRODUCTION
    production_password = "production-secret"
    settle_seconds = 240
    made = {"images": 1, "volume_snapshots": 1, "stacks": 1, "containers": 1}  # what one clone leaves

    def __init__(self, conn, production_stack):
        self.conn, self.production_stack = conn, production_stack

    def doppel(self, tmp_path: Path):
        return openstack.Doppel(tmp_path)

    def refusing_doppel(self, tmp_path: Path):
        """A Doppel whose stacks the cloud refuses, and the words its reason must hold: Heat's, naming the
        resource (Nova finds no host for a flavor that size)."""
        return openstack.Doppel(tmp_path, flavor=openstack.HUGE_FLAVOR), ("Resource CREATE failed", "resources.app")

    def leftovers(self, env: str) -> dict:
        return openstack.leftovers(self.conn, env)

    def _resources(self, stack) -> dict:
        return {r.name: r.physical_resource_id for r in self.conn.orchestration.resources(stack)}

    def made_from(self, env: str) -> dict:
        """(kind, component) -> the snapshot part the environment's running resources were made from."""
        from clouds.openstack.resources import stack_name
        resources = self._resources(self.conn.orchestration.find_stack(stack_name(env)))
        server = self.conn.compute.get_server(resources["app"])
        volume = self.conn.block_storage.get_volume(resources["data"])
        return {("image", "app"): server.image["id"], ("volume", "data"): volume.snapshot_id}

    def env_tag(self, kind: str, part_id: str) -> str | None:
        if kind == "image":
            return (self.conn.image.get_image(part_id).properties or {}).get("doppel-env")
        return (self.conn.block_storage.get_snapshot(part_id).metadata or {}).get("doppel-env")

    def credential(self, env: str) -> str:
        """The database password the environment was given: in its config bundle and on its server, the same."""
        from clouds.openstack.resources import container_name, stack_name
        bundle = json.loads(self.conn.object_store.download_object("config.json", container=container_name(env)))
        stack = self.conn.orchestration.find_stack(stack_name(env))
        server = self.conn.compute.get_server(self._resources(stack)["app"])
        assert bundle["crons"] is False
        assert server.metadata["db_password"] == bundle["settings"]["database.password"]
        return bundle["settings"]["database.password"]

    def base_url(self, env: str) -> str:
        return f"http://doppel-{env}.example.com"

    def production_state(self) -> dict:
        """What must not change in production when it is cloned or reaped around."""
        stack = self.conn.orchestration.get_stack(self.production_stack.id)
        resources = self._resources(stack)
        server = self.conn.compute.get_server(resources["app"])
        return {"status": stack.status, "updated": stack.updated_at, "resources": resources,
                "metadata": dict(server.metadata), "server_status": server.status,
                "volume_status": self.conn.block_storage.get_volume(resources["data"]).status}

    def plant_orphans(self, ghost: str) -> set:
        """Resources tagged for an environment the registry never heard of: (kind, id) as reap must name them."""
        from clouds.openstack.resources import container_name, stack_name
        conn = self.conn
        tags = {"doppel-env": ghost, "doppel-key": f"test/{ghost}", "doppel-production": self.production,
                "doppel-snapshot": f"snap-{ghost}-000000000000"}
        conn.image.create_image(name=f"snap-{ghost}-000000000000-app", disk_format="raw", container_format="bare",
                                data=io.BytesIO(b"\0" * 1024), allow_duplicates=True, **tags)
        snap = conn.block_storage.create_snapshot(volume_id=self._resources(self.production_stack)["data"],
                                                  name=f"snap-{ghost}-000000000000-data", force=True, metadata=tags)
        conn.block_storage.wait_for_status(snap, status="available", failures=["error"], interval=1, wait=120)
        conn.object_store.create_container(container_name(ghost), metadata=tags)
        conn.object_store.upload_object(container_name(ghost), "config.json", data=b"{}")
        stack = conn.orchestration.create_stack(
            name=stack_name(ghost), tags=f"doppel,doppel-env={ghost}",
            template={"heat_template_version": "2018-08-31", "resources": {"r": {"type": "OS::Heat::RandomString"}},
                      "parameters": {name: {"type": "string", "default": ""} for name in
                                     ("doppel_env", "doppel_key", "doppel_production")}},
            parameters={"doppel_env": ghost, "doppel_key": tags["doppel-key"], "doppel_production": self.production})
        conn.orchestration.wait_for_status(stack, status="CREATE_COMPLETE", failures=["CREATE_FAILED"], wait=120)
        return {("snapshot", tags["doppel-snapshot"]), ("container", container_name(ghost)), ("stack", stack.id)}

    def remove_planted(self, ghost: str) -> None:
        from clouds.openstack.resources import container_name, stack_name
        conn = self.conn
        for image in conn.image.images():
            if (image.properties or {}).get("doppel-env") == ghost:
                conn.image.delete_image(image, ignore_missing=True)
        for snap in conn.block_storage.snapshots(details=True):
            if (snap.metadata or {}).get("doppel-env") == ghost:
                conn.block_storage.delete_snapshot(snap, ignore_missing=True)
        stack = conn.orchestration.find_stack(stack_name(ghost))
        if stack is not None:
            conn.orchestration.delete_stack(stack, ignore_missing=True)
        if self.leftovers(ghost).get("containers"):
            for obj in conn.object_store.objects(container_name(ghost)):
                conn.object_store.delete_object(obj, container=container_name(ghost))
            conn.object_store.delete_container(container_name(ghost), ignore_missing=True)


class AwsBed:
    name = "aws"
    production = aws.PRODUCTION
    production_password = aws.PRODUCTION_PASSWORD
    settle_seconds = 120
    made = {"images": 1, "db_snapshots": 1, "stacks": 1}

    def __init__(self, production_stack):
        self.production_stack = production_stack

    def doppel(self, tmp_path: Path):
        return aws.Doppel(tmp_path)

    def refusing_doppel(self, tmp_path: Path):
        """A Doppel whose template wants a parameter the production's entry does not give: CloudFormation refuses
        it, and says which."""
        template = json.loads((aws.HERE / "templates/environment.json").read_text())
        template["Parameters"]["InstanceType"] = {"Type": "String"}
        (tmp_path / "environment.json").write_text(json.dumps(template))
        return (aws.Doppel(tmp_path, template=tmp_path / "environment.json"),
                ("CloudFormation refused the stack", "InstanceType"))

    def leftovers(self, env: str) -> dict:
        return aws.leftovers(env)

    def made_from(self, env: str) -> dict:
        parameters = aws.stack_parameters(env)
        reservations = aws.client("ec2").describe_instances(
            Filters=[{"Name": "tag:doppel-env", "Values": [env]}])["Reservations"]
        (web,) = [i for r in reservations for i in r["Instances"]]
        assert web["ImageId"] == parameters["WebImage"]
        return {("image", "Web"): web["ImageId"], ("db", "Database"): parameters["DbSnapshot"]}

    def env_tag(self, kind: str, part_id: str) -> str | None:
        if kind == "image":
            (image,) = aws.client("ec2").describe_images(ImageIds=[part_id])["Images"]
            tags = image.get("Tags") or []
        else:
            (snap,) = aws.client("rds").describe_db_snapshots(DBSnapshotIdentifier=part_id)["DBSnapshots"]
            tags = snap.get("TagList") or []
        return {t["Key"]: t["Value"] for t in tags}.get("doppel-env")

    def credential(self, env: str) -> str:
        return aws.stack_parameters(env)["DbPassword"]

    def base_url(self, env: str) -> str:
        return f"http://{env}.shop.example.com"

    def production_state(self) -> dict:
        cfn = aws.client("cloudformation")
        (stack,) = cfn.describe_stacks(StackName=aws.PRODUCTION_STACK)["Stacks"]
        resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                     for r in cfn.describe_stack_resources(StackName=aws.PRODUCTION_STACK)["StackResources"]}
        (web,) = [i for r in aws.client("ec2").describe_instances(InstanceIds=[resources["Web"]])["Reservations"]
                  for i in r["Instances"]]
        return {"status": stack["StackStatus"], "updated": stack.get("LastUpdatedTime"), "resources": resources,
                "instance": (web["State"]["Name"], web["ImageId"])}

    def plant_orphans(self, ghost: str) -> set:
        tags = {"doppel-env": ghost, "doppel-key": f"test/{ghost}", "doppel-production": self.production,
                "doppel-snapshot": f"snap-{ghost}-000000000000"}
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        ec2, cfn = aws.client("ec2"), aws.client("cloudformation")
        web = self.production_state()["resources"]["Web"]
        ec2.create_image(InstanceId=web, Name=f"snap-{ghost}-000000000000-Web",
                         TagSpecifications=[{"ResourceType": "image", "Tags": tag_list}])
        template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
        stack_id = cfn.create_stack(StackName=f"doppel-{ghost}", TemplateBody=json.dumps(template),
                                    Tags=tag_list)["StackId"]
        wait_for(lambda: cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE",
                 60, "the planted stack made")
        return {("snapshot", tags["doppel-snapshot"]), ("stack", stack_id)}

    def remove_planted(self, ghost: str) -> None:
        ec2 = aws.client("ec2")
        for image in ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:doppel-env",
                                                                     "Values": [ghost]}])["Images"]:
            ec2.deregister_image(ImageId=image["ImageId"])
        if self.leftovers(ghost).get("stacks"):
            aws.client("cloudformation").delete_stack(StackName=f"doppel-{ghost}")


@pytest.fixture(params=[pytest.param("openstack", marks=pytest.mark.openstack),
                        pytest.param("aws", marks=pytest.mark.aws)])
def bed(request, monkeypatch):
    """One cloud driver's test bed, its production made (once a session) and its services up."""
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    if request.param == "openstack":
        return OpenStackBed(request.getfixturevalue("openstack_cloud"),
                            request.getfixturevalue("openstack_production_stack"))
    request.getfixturevalue("aws_env")
    return AwsBed(request.getfixturevalue("aws_production_stack"))
