"""Route 53 as the DNS provider, on moto's server: switches read back with the `aws` CLI, and a failover of the
sample production that points its name at the DR copy in Route 53 and back on failback."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from clouds.dns import make_dns_provider
from core.cloud import DnsRecord
from tests.integration.aws.conftest import client

pytestmark = pytest.mark.aws


@pytest.fixture
def zone(aws_env):
    """A public hosted zone of its own in moto's Route 53."""
    name = f"z{uuid.uuid4().hex[:8]}.example.com"
    route53 = client("route53")
    zone_id = route53.create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    yield name, zone_id.rsplit("/", 1)[-1]
    for found in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if found["Type"] not in ("SOA", "NS"):
            route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Changes": [{"Action": "DELETE", "ResourceRecordSet": found}]})
    route53.delete_hosted_zone(Id=zone_id)


def aws_cli_records(zone_id: str, name: str) -> dict:
    """What the `aws` CLI lists for `name`: type -> (values, ttl)."""
    run = subprocess.run(["aws", "route53", "list-resource-record-sets", "--hosted-zone-id", zone_id,
                          "--output", "json"], check=True, capture_output=True, text=True, env=os.environ)
    return {r["Type"]: ([v["Value"] for v in r["ResourceRecords"]], r["TTL"])
            for r in json.loads(run.stdout)["ResourceRecordSets"] if r["Name"].rstrip(".") == name}


def test_switches_upsert_one_value_return_what_was_there_and_delete(zone):
    name, zone_id = zone
    site = f"shop.{name}"
    provider = make_dns_provider({"type": "route53", "zone": name})

    assert provider.switch(DnsRecord(site, "A", "192.0.2.10", 300)) is None
    assert aws_cli_records(zone_id, site) == {"A": (["192.0.2.10"], 300)}

    previous = provider.switch(DnsRecord(site, "A", "198.51.100.20", 60))
    assert previous == DnsRecord(site, "A", "192.0.2.10", 300)
    assert aws_cli_records(zone_id, site) == {"A": (["198.51.100.20"], 60)}
    assert provider.get(site.upper() + ".") == DnsRecord(site, "A", "198.51.100.20", 60)

    provider.delete(site, "A")
    assert aws_cli_records(zone_id, site) == {} and provider.get(site) is None


def test_a_failover_points_the_name_at_the_dr_copy_in_route53_and_failback_points_it_home(zone, tmp_path):
    from tests.flow.conftest import Shop
    name, zone_id = zone
    site = f"shop.{name}"
    home, dr_address = "192.0.2.10", "198.51.100.20"
    policy = {"target": {"env": "shop-dr"}, "alarms": ["shop-down"], "debounce": "10m",
              "dns": {"provider": {"type": "route53", "zone": name},
                      "records": [{"name": site, "type": "A", "value": dr_address, "ttl": 60}]}}
    shop = Shop(tmp_path, dr={"shop": policy})
    try:
        make_dns_provider({"type": "route53", "zone": name}).switch(DnsRecord(site, "A", home, 300))
        shop.publish("backup.due", env="shop")

        shop.publish("monitor.alert", alarm_id="a-1", alarm_name="shop-down", severity="critical", previous="ok",
                     current="alarm", reason="http 5xx")
        (done,) = shop.events("failover.done")
        assert aws_cli_records(zone_id, site) == {"A": ([dr_address], 60)}

        shop.publish("failback.requested", production="shop")
        assert len(shop.events("failback.done")) == 1 and done.data["backup_id"]
        assert aws_cli_records(zone_id, site) == {"A": ([home], 300)}
    finally:
        shop.app.close()
