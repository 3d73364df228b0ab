"""DNS switches in a real Designate (tests/services/openstack.sh) whose DNS server is the real BIND 9 of
tests/services/bind.sh, checked with the real `dig @127.0.0.1 -p 5353`; the test bed's second region and its DR
project, seen from the DR cloud entry of clouds.yaml.

Each test session makes its own zones (a DR zone in the DR project, a production zone in production's project)
and deletes them after; zones of sessions that died without deleting theirs are removed at the start.
"""
from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path

import openstack
import pytest
from openstack import exceptions

import functions  # noqa: F401 - the functions the embedded Doppel serves
from clouds.dns import make_dns_provider
from clouds.openstack.driver import OpenStackDriver
from core.cloud import DnsRecord, DriverError
from tests.flow.conftest import Shop
from tests.integration.openstack.conftest import SESSION
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.openstack, pytest.mark.dns]

DR_CLOUD, REGION2, DR_PROJECT = "doppel-test-dr", "RegionTwo", "doppel-dr"
ZONE_SUFFIX = "doppel-it.test."                   # every zone these tests make ends so
DR_ZONE = f"dr-{SESSION}.{ZONE_SUFFIX}"           # in the DR project
PRODUCTION_ZONE = f"prod-{SESSION}.{ZONE_SUFFIX}"  # in production's project (admin)
SHOP = f"shop.{DR_ZONE}".rstrip(".")
HOME, DR_ADDRESS = "127.0.0.10", "127.0.0.20"


def dig(name: str, type: str = "A") -> list[str]:
    """What the BIND behind Designate answers, asked directly (no resolver, no cache)."""
    out = subprocess.run(["dig", "@127.0.0.1", "-p", "5353", name, type, "+short", "+norecurse"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()


def dig_ttl(name: str) -> int:
    answer = subprocess.run(["dig", "@127.0.0.1", "-p", "5353", name, "A", "+noall", "+answer"],
                            capture_output=True, text=True, check=True, timeout=30).stdout.split()
    return int(answer[1])


def active(conn, get, what: str):
    """Wait until Designate says the zone or recordset is ACTIVE (its workers pushed it to BIND)."""
    def check():
        found = get()
        assert found.status != "ERROR", f"{what} is in ERROR: see designate-worker.log"
        return found if found.status == "ACTIVE" else None
    return wait_for(check, 120, f"{what} ACTIVE in Designate", interval=0.5)


def make_zone(conn, name: str):
    zone = conn.dns.create_zone(name=name, email=f"hostmaster@{name.rstrip('.')}", ttl=300)
    return active(conn, lambda: conn.dns.get_zone(zone.id), f"zone {name}")


def remove_abandoned_zones(conn, older_than_s: float = 3 * 3600) -> None:
    """Zones of test sessions that ended without deleting theirs (killed, or crashed)."""
    now = time.time()
    for zone in conn.dns.zones():
        if zone.name.endswith("." + ZONE_SUFFIX) and SESSION not in zone.name:
            created = datetime.fromisoformat(zone.created_at.replace("Z", "+00:00")).timestamp()
            if now - created > older_than_s:
                conn.dns.delete_zone(zone, ignore_missing=True)


@pytest.fixture(scope="session")
def dr_cloud(openstack_cloud):
    """The DR side as Doppel reaches it: the DR entry of clouds.yaml (its project, the second region)."""
    conn = openstack.connect(cloud=DR_CLOUD)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def dr_zone(openstack_cloud, dr_cloud):
    """A zone in the DR project's Designate, served by BIND."""
    remove_abandoned_zones(openstack_cloud)
    remove_abandoned_zones(dr_cloud)
    zone = make_zone(dr_cloud, DR_ZONE)
    try:
        yield zone
    finally:
        dr_cloud.dns.delete_zone(zone, ignore_missing=True)


@pytest.fixture
def shop_at_home(dr_cloud, dr_zone):
    """shop.<zone> as each test starts: A 127.0.0.10, TTL 300 — set through Designate's API, not Doppel."""
    found = list(dr_cloud.dns.recordsets(dr_zone, name=SHOP + ".", type="A"))
    if found:
        recordset = dr_cloud.dns.update_recordset(found[0], records=[HOME], ttl=300)
    else:
        recordset = dr_cloud.dns.create_recordset(dr_zone, name=SHOP + ".", type="A", records=[HOME], ttl=300)
    active(dr_cloud, lambda: dr_cloud.dns.get_recordset(recordset, dr_zone), SHOP)
    wait_for(lambda: dig(SHOP) == [HOME], 30, f"BIND serving {SHOP} at {HOME}", interval=0.2)


def test_the_second_region_exists_and_the_dr_cloud_entry_connects_to_it(openstack_cloud, dr_cloud):
    assert REGION2 in {region.id for region in openstack_cloud.identity.regions()}
    # The DR entry authenticates as its own project and picks the second region's endpoints.
    assert dr_cloud.current_project.name == DR_PROJECT
    assert dr_cloud.config.get_region_name() == REGION2
    for service_type in ("dns", "orchestration", "image", "compute", "object-store", "identity"):
        assert dr_cloud.session.get_endpoint(service_type=service_type, region_name=REGION2, interface="public")
    assert list(dr_cloud.dns.zones()) is not None and list(dr_cloud.orchestration.stacks()) is not None
    # A region the catalog does not have is refused: the region of the entry is really what chooses.
    nowhere = openstack.connect(auth_type="password", auth=dict(dr_cloud.config.config["auth"]),
                                region_name="RegionNine", identity_api_version="3")
    assert nowhere.current_project.name == DR_PROJECT
    with pytest.raises(exceptions.SDKException, match="dns service in RegionNine region not found"):
        list(nowhere.dns.zones())


def test_the_dr_project_sees_nothing_of_productions_zone_or_stack(openstack_cloud, dr_cloud, dr_zone):
    production = openstack_cloud
    zone = make_zone(production, PRODUCTION_ZONE)
    stack = production.orchestration.create_stack(name=f"doppel-it-isolation-{SESSION}", template={
        "heat_template_version": "2018-08-31", "resources": {"nothing": {"type": "OS::Heat::None"}}})
    try:
        production.orchestration.wait_for_status(stack, status="CREATE_COMPLETE", failures=["CREATE_FAILED"],
                                                 interval=1, wait=120)
        assert PRODUCTION_ZONE in {z.name for z in production.dns.zones()}  # production does see its own

        assert PRODUCTION_ZONE not in {z.name for z in dr_cloud.dns.zones()}
        assert {z.name for z in dr_cloud.dns.zones()} >= {DR_ZONE}
        with pytest.raises(exceptions.NotFoundException):
            dr_cloud.dns.get_zone(zone.id)
        assert stack.name not in {s.name for s in dr_cloud.orchestration.stacks()}
        assert dr_cloud.orchestration.find_stack(stack.name, ignore_missing=True) is None
        # And the DR project cannot write into production's zone.
        with pytest.raises(exceptions.HttpException):
            dr_cloud.dns.create_recordset(zone, name=f"www.{PRODUCTION_ZONE}", type="A", records=[DR_ADDRESS])
    finally:
        production.orchestration.delete_stack(stack, ignore_missing=True)
        production.dns.delete_zone(zone, ignore_missing=True)


def test_the_designate_provider_switches_the_name_and_bind_serves_it_then_switches_it_back(shop_at_home):
    provider = make_dns_provider({"type": "designate", "cloud": DR_CLOUD, "zone": DR_ZONE, "region_name": REGION2})

    previous = provider.switch(DnsRecord(SHOP, "A", DR_ADDRESS, ttl=60))

    assert previous == DnsRecord(SHOP, "A", HOME, ttl=300)
    assert dig(SHOP) == [DR_ADDRESS] and dig_ttl(SHOP) == 60  # ACTIVE means BIND serves it: no waiting here
    assert provider.get(SHOP, "A") == DnsRecord(SHOP, "A", DR_ADDRESS, ttl=60)

    assert provider.switch(previous) == DnsRecord(SHOP, "A", DR_ADDRESS, ttl=60)

    assert dig(SHOP) == [HOME] and dig_ttl(SHOP) == 300


def test_the_openstack_drivers_dns_verbs_switch_a_name_in_designate(shop_at_home):
    driver = OpenStackDriver({"shop": {"driver": "openstack", "cloud": DR_CLOUD, "region": REGION2,
                                       "stack": "doppel-it-unused", "template": str(Path(__file__))}})
    assert driver.get_dns(SHOP) == DnsRecord(SHOP, "A", HOME, ttl=300)

    previous = driver.switch_dns(DnsRecord(SHOP, "A", DR_ADDRESS, ttl=60))

    assert previous == DnsRecord(SHOP, "A", HOME, ttl=300)
    assert dig(SHOP) == [DR_ADDRESS]
    assert driver.get_dns(SHOP) == DnsRecord(SHOP, "A", DR_ADDRESS, ttl=60)
    driver.switch_dns(previous)
    assert dig(SHOP) == [HOME]
    # A name in no zone of the production's project: nothing to read, and a switch says why it cannot.
    nowhere = f"shop.nowhere-{SESSION}.{ZONE_SUFFIX}".rstrip(".")
    assert driver.get_dns(nowhere) is None
    with pytest.raises(DriverError, match="no Designate zone") as refused:
        driver.switch_dns(DnsRecord(nowhere, "A", DR_ADDRESS, ttl=60))
    assert refused.value.permanent


@pytest.fixture
def designate_shop(tmp_path, monkeypatch, shop_at_home):
    """A production with a DR policy whose DNS provider is the DR project's Designate."""
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    provider = {"type": "designate", "cloud": DR_CLOUD, "zone": DR_ZONE, "region_name": REGION2}
    shop = Shop(tmp_path, dr={"shop": {"target": {"env": "shop-dr"}, "alarms": ["shop-down"],
                                       "dns": {"provider": provider,
                                               "records": [{"name": SHOP, "value": DR_ADDRESS, "ttl": 60}]}}})
    yield shop
    shop.app.close()


def test_a_failover_switches_the_name_in_designate_and_the_failback_puts_it_back(designate_shop):
    shop = designate_shop
    shop.publish("backup.due", env="shop")

    shop.publish("monitor.alert", alarm_id="a-1", alarm_name="shop-down", previous="ok", current="alarm")

    assert len(shop.events("failover.done")) == 1
    assert dig(SHOP) == [DR_ADDRESS] and dig_ttl(SHOP) == 60
    assert shop.app.dr_states.get("shop").previous_dns == [
        {"name": SHOP, "type": "A", "record": {"name": SHOP, "type": "A", "value": HOME, "ttl": 300}}]

    shop.publish("failback.requested", production="shop")

    assert len(shop.events("failback.done")) == 1
    assert dig(SHOP) == [HOME] and dig_ttl(SHOP) == 300
