"""Production on AWS fails over into a second AWS region (issue 13, point 4), through the same DR design as the
OpenStack target: moto's server stands for EC2, CloudFormation, S3 and Route 53 in both regions; the alarm is a
real Aodh alarm of the OpenStack test bed whose action is the gateway's hook (moto's CloudWatch keeps alarms and
their states, but Alarm.update_state in moto/cloudwatch/models.py only records the new state: no AlarmActions
is ever called).

A sync copies the AMI production's instance boots from into the DR region (CopyImage) and the newest backup into
the DR region's S3 bucket; no stack is made there. The alarm fails production over: the DR stack is made in the
DR region from templates/dr.json with the copied AMI, probed (its instance running), and the name is switched in
Route 53 to the address its outputs give, read back with the `aws` CLI. The failback points it home and deletes
the DR stack; a drill leaves nothing in the DR region; a DR template CloudFormation refuses fails the failover at
step `stack` with nothing left there.

Cost: about 55 s for the three tests on a quiet machine (measured 25 s, 22 s and 9 s; 115 s with the machine busy),
most of it waiting for Aodh's evaluations.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from clouds.dns import make_dns_provider
from clouds.stores.s3 import S3Store
from core.cloud import DnsRecord
from doppel.cli import main
from tests.integration.aws.conftest import ENDPOINT, PRODUCTION, SESSION, client, production_entry
from tests.integration.aws.test_route53 import aws_cli_records
from tests.support.aodh import aodh_alarm
from tests.support.gateway import Front, back_up, embedded_gateway_env, frozen, publish
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.aws, pytest.mark.openstack]

HERE = Path(__file__).resolve().parent
REGION2 = "eu-central-1"
HOME, DR_ADDRESS = "192.0.2.10", "198.51.100.30"
DR_ENV = f"shop-dr-{SESSION}"
DRILLS = f"doppel-{PRODUCTION[:24]}-drill-"


def client2(service: str):
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=REGION2).client(service, endpoint_url=ENDPOINT)


def dr_stacks() -> list[str]:
    """This session's stacks in the DR region: the DR stack, drills' stacks (deleted ones left out)."""
    return [s["StackName"] for s in client2("cloudformation").describe_stacks()["Stacks"]
            if s["StackName"] == f"doppel-{DR_ENV}" or s["StackName"].startswith(DRILLS)]


def dr_instances() -> list[str]:
    """This session's instances in the DR region that are not terminated."""
    found = client2("ec2").describe_instances(Filters=[{"Name": "tag:Name", "Values": [DR_ENV, f"{PRODUCTION[:24]}*"]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]


def dr_images() -> list[dict]:
    return client2("ec2").describe_images(Owners=["self"], Filters=[
        {"Name": "tag:doppel-production", "Values": [PRODUCTION]}])["Images"]


def empty_bucket(bucket: str, region: str) -> None:
    s3 = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                               region_name=region).client("s3", endpoint_url=ENDPOINT)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", ()):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


@pytest.fixture
def zone(aws_env):
    """A hosted zone of its own in moto's Route 53, the name at home (TTL 300) as each test starts."""
    name = f"dr{uuid.uuid4().hex[:8]}.example.com"
    route53 = client("route53")
    zone_id = route53.create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    make_dns_provider({"type": "route53", "zone": name}).switch(DnsRecord(f"shop.{name}", "A", HOME, 300))
    yield name, zone_id.rsplit("/", 1)[-1]
    for found in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if found["Type"] not in ("SOA", "NS"):
            route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Changes": [{"Action": "DELETE", "ResourceRecordSet": found}]})
    route53.delete_hosted_zone(Id=zone_id)


@pytest.fixture
def shop(tmp_path, monkeypatch, aws_env, production_stack, zone):
    """Make an embedded Doppel with its gateway, whose production is the session's stack in the first region, and
    whose DR policy targets the second region (`template` replaces the DR template)."""
    embedded_gateway_env(monkeypatch)
    made, backups, dr_bucket = [], f"doppel-it-bk-{uuid.uuid4().hex[:8]}", f"doppel-it-dr-{uuid.uuid4().hex[:8]}"

    def make(template: Path = HERE / "templates/dr.json"):
        alarm = f"doppel-dr-aws-{uuid.uuid4().hex[:8]}"
        target = {"driver": "aws", "env": DR_ENV, "region": REGION2, "template": str(template), "bucket": dr_bucket,
                  "parameters": {"Address": DR_ADDRESS}}
        productions = {PRODUCTION: production_entry()}
        dr = {PRODUCTION: {"target": target, "alarms": [alarm], "backup": "newest",
                           "dns": {"provider": {"type": "route53", "zone": zone[0]},
                                   "records": [{"name": f"shop.{zone[0]}", "value": "{outputs.address}", "ttl": 60}]}}}
        backups_section = {"store": {"type": "s3", "bucket": backups, "region_name": "eu-west-1"}}
        front = Front(tmp_path / f"doppel-{len(made)}", productions=productions, dr=dr, backups=backups_section)
        front.document = {"state_dir": str(tmp_path / f"doppel-{len(made)}" / "state"), "productions": productions,
                          "backups": backups_section, "dr": dr}
        front.alarm_name, front.target, front.site, front.zone_id = alarm, target, f"shop.{zone[0]}", zone[1]
        made.append(front)
        return front

    yield make
    for front in made:
        front.app.cloud.dr_delete(PRODUCTION, front.target)
        front.close()
    for name in dr_stacks():
        client2("cloudformation").delete_stack(StackName=name)
    named = client2("ec2").describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": [f"doppel-dr-{PRODUCTION}-*"]}])["Images"]
    for image_id in {i["ImageId"] for i in dr_images() + named}:
        client2("ec2").deregister_image(ImageId=image_id)
    empty_bucket(dr_bucket, REGION2)
    empty_bucket(backups, "eu-west-1")


def production_image() -> str:
    """The AMI production's instance Web boots from."""
    (web,) = [r["PhysicalResourceId"] for r in client("cloudformation").describe_stack_resources(
        StackName=f"doppel-it-production-{SESSION}")["StackResources"] if r["LogicalResourceId"] == "Web"]
    return client("ec2").describe_instances(InstanceIds=[web])["Reservations"][0]["Instances"][0]["ImageId"]


def alarm_fires(front, conn) -> None:
    """A real Aodh alarm, whose action is the gateway's hook, pushed high until the failover has an outcome."""
    def done():
        if any(front.app.audit.events(event_type=o) for o in ("failover.done", "failover.failed")):
            return True
        alarm.push_high()
        return False
    with aodh_alarm(conn, front.alarm_name, front.url) as alarm:
        wait_for(done, 300, "Aodh's alarm and the failover's outcome", interval=2)
    front.quiesce()
    assert front.app.audit.events(event_type="monitor.alert")[0].source == "doppel/gateway/aodh"


@pytest.mark.timeout(600)
def test_sync_copies_the_ami_and_backup_to_the_second_region_an_alarm_fails_over_and_failback_goes_home(
        shop, openstack_cloud):
    front = shop()
    newest = back_up(front, PRODUCTION)

    # When the sync runs twice
    publish(front, "sync.due", production=PRODUCTION)
    (copied,) = dr_images()
    publish(front, "sync.due", production=PRODUCTION)

    # Then production's boot AMI is in the DR region, copied once (the second sync kept it)
    synced = front.app.audit.events(event_type="sync.done")
    assert [s.data["backup_id"] for s in synced] == [newest, newest], synced
    assert [i["ImageId"] for i in dr_images()] == [copied["ImageId"]]
    source = production_image()
    tags = {t["Key"]: t["Value"] for t in copied["Tags"]}
    assert tags["doppel-source-image"] == source != copied["ImageId"] and copied["State"] == "available"
    # the backup is readable in the DR region's bucket, whole
    manifest = front.app.backups.find(newest)
    store = S3Store(front.target["bucket"], region_name=REGION2, create_bucket=False)
    assert hashlib.sha256(b"".join(store.get_stream(manifest.archive_key))).hexdigest() == manifest.sha256
    # and nothing runs in the DR region between syncs
    assert dr_stacks() == [] and dr_instances() == []

    # When Aodh's alarm fires through the gateway
    alarm_fires(front, openstack_cloud)

    # Then exactly one failover, into a DR stack in the second region booting the copied AMI
    assert [f.data["reason"] for f in front.app.audit.events(event_type="failover.failed")] == []
    (done,) = front.app.audit.events(event_type="failover.done")
    assert done.data["backup_id"] == newest and done.data["endpoints"]["address"] == DR_ADDRESS
    (stack,) = client2("cloudformation").describe_stacks(StackName=f"doppel-{DR_ENV}")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    instance = client2("ec2").describe_instances(InstanceIds=[outputs["web_id"]])["Reservations"][0]["Instances"][0]
    assert instance["ImageId"] == copied["ImageId"] and instance["State"]["Name"] == "running"
    assert dr_instances() == [outputs["web_id"]]
    # Route 53 answers with the DR address (the `aws` CLI), and sync and backups are frozen
    assert aws_cli_records(front.zone_id, front.site) == {"A": ([DR_ADDRESS], 60)}
    assert front.app.dr_states.get(PRODUCTION).state == "failed_over"
    assert frozen(front, PRODUCTION) == {"sync.due", "backup.due"}
    publish(front, "sync.due", production=PRODUCTION)
    assert "failed_over" in front.app.audit.events(event_type="sync.done")[-1].data["skipped"]

    # When the failback is asked for
    publish(front, "failback.requested", production=PRODUCTION)

    # Then the name points home, the DR stack is gone, and the freeze is lifted
    assert [f.data["reason"] for f in front.app.audit.events(event_type="failback.failed")] == []
    (back,) = front.app.audit.events(event_type="failback.done")
    assert aws_cli_records(front.zone_id, front.site) == {"A": ([HOME], 300)}
    assert dr_stacks() == [] and dr_instances() == []
    row = front.app.dr_states.get(PRODUCTION)
    assert row.state == "normal" and front.app.backups.find(back.data["backup_id"])
    assert frozen(front, PRODUCTION) == set()
    assert [i["ImageId"] for i in dr_images()] == [copied["ImageId"]]  # kept for the next failover


@pytest.mark.timeout(600)
def test_a_dr_template_cloudformation_refuses_fails_the_failover_at_step_stack_and_leaves_nothing(
        shop, openstack_cloud, tmp_path, capsys):
    template = json.loads((HERE / "templates/dr.json").read_text())
    template["Parameters"]["InstanceType"] = {"Type": "String"}  # a parameter nothing gives
    (tmp_path / "dr.json").write_text(json.dumps(template))
    front = shop(template=tmp_path / "dr.json")
    newest = back_up(front, PRODUCTION)
    publish(front, "sync.due", production=PRODUCTION)

    # `doppel dr failover --dry-run` says what it would do in the DR region, and changes nothing
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(front.document))
    capsys.readouterr()
    assert main(["--config", str(config), "dr", "failover", PRODUCTION, "--dry-run", "-o", "json"]) == 0
    plan = {step["step"]: step for step in json.loads(capsys.readouterr().out)}
    (copied,) = dr_images()
    assert plan["images"]["detail"] == f"Web from {copied['ImageId']} (copied by sync)"
    assert plan["stack"]["action"] == "create" and f"AWS region {REGION2}" in plan["stack"]["detail"]
    assert plan["restore"]["detail"].startswith(f"{newest} from s3:{front.target['bucket']}")
    assert dr_stacks() == []

    alarm_fires(front, openstack_cloud)

    (failed,) = front.app.audit.events(event_type="failover.failed")
    assert failed.data["step"] == "stack", failed.data
    assert f"CloudFormation in AWS region {REGION2} refused the DR stack doppel-{DR_ENV}" in failed.data["reason"]
    assert "InstanceType" in failed.data["reason"]
    assert not front.app.audit.events(event_type="failover.done")
    assert dr_stacks() == [] and dr_instances() == []
    assert aws_cli_records(front.zone_id, front.site) == {"A": ([HOME], 300)}
    row = front.app.dr_states.get(PRODUCTION)
    assert row.state == "normal" and row.holder is None and not row.dns_switched


@pytest.mark.timeout(300)
def test_a_drill_in_the_second_region_verifies_the_backup_and_leaves_nothing_behind(shop):
    front = shop()
    backup = back_up(front, PRODUCTION)
    # Given a copy an earlier sync made in the DR region but died before tagging (CopyImage takes no tags)
    source = production_image()
    untagged = client2("ec2").copy_image(SourceImageId=source, SourceRegion="eu-west-1",
                                         Name=f"doppel-dr-{PRODUCTION}-Web-{source}")["ImageId"]
    publish(front, "sync.due", production=PRODUCTION)
    # the sync found it by its name and tagged it, rather than copying again
    assert [i["ImageId"] for i in dr_images()] == [untagged]

    publish(front, "drill.due", production=PRODUCTION)

    assert [f.data["reason"] for f in front.app.audit.events(event_type="drill.failed")] == []
    (done,) = front.app.audit.events(event_type="drill.done")
    assert done.data["backup_id"] == backup and done.data["verified"] is True, front.app.dr_states.drills()
    # a drill stack was made in the DR region from the DR template, and deleted: nothing is left there
    made = [s for s in client2("cloudformation").list_stacks()["StackSummaries"] if s["StackName"].startswith(DRILLS)]
    assert [s["StackStatus"] for s in made] == ["DELETE_COMPLETE"]
    assert dr_stacks() == [] and dr_instances() == []
    assert aws_cli_records(front.zone_id, front.site) == {"A": ([HOME], 300)}
    assert front.app.dr_states.get(PRODUCTION).state == "normal"
