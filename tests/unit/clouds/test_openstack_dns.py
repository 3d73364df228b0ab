"""Which Designate zone the openstack driver's DNS verbs pick for a name (driver logic only).

The connections are the in-memory stand-in of tests/unit/dns/test_designate.py, one per (cloud, region); the
switch against a real Designate and BIND is tests/integration/openstack/test_designate.py.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from openstack import exceptions

from clouds.openstack import OpenStackDriver
from core.cloud import DnsRecord, DriverError
from tests.unit.dns.test_designate import DesignateDns


def driver_over(places: dict) -> OpenStackDriver:
    """A driver whose productions live in `places`: (cloud, region) -> zone names of that project."""
    productions, conns = {}, {}
    for i, ((cloud, region), zones) in enumerate(places.items()):
        conns[(cloud, region)] = SimpleNamespace(dns=_Listing(DesignateDns(zones=zones)))
        productions[f"p{i}"] = {"driver": "openstack", "cloud": cloud, "region": region, "stack": "s",
                                "template": "/t.yaml"}
    return OpenStackDriver(productions, connect=lambda cloud, region: conns[(cloud, region)])


class _Listing:
    """conn.dns: the stand-in's calls, plus zones() listing what it holds."""

    def __init__(self, dns: DesignateDns, fail: Exception | None = None):
        self._dns, self.fail = dns, fail

    def zones(self):
        if self.fail:
            raise self.fail
        return iter(list(self._dns.zones.values()))

    def __getattr__(self, name):
        return getattr(self._dns, name)


def test_the_switch_goes_to_the_longest_zone_holding_the_name():
    driver = driver_over({("prod", "RegionOne"): ("example.com.", "dr.example.com.", "xdr.example.com.")})

    assert driver.switch_dns(DnsRecord("Shop.DR.example.com.", "A", "10.0.0.2", 60)) is None

    dns = driver._conn(driver.productions["p0"]).dns._dns
    [stored] = dns.stored.values()
    assert (stored.zone_id, stored.name, stored.records) == (dns.zones["dr.example.com."].id,
                                                               "shop.dr.example.com.", ["10.0.0.2"])
    assert driver.get_dns("shop.dr.example.com") == DnsRecord("shop.dr.example.com", "A", "10.0.0.2", 60)


def test_a_zone_is_looked_for_in_each_productions_cloud_in_turn_and_a_lookalike_name_is_not_in_it():
    driver = driver_over({("prod", "RegionOne"): ("example.org.",), ("dr", "RegionTwo"): ("example.com.",)})

    driver.switch_dns(DnsRecord("shop.example.com", "A", "10.0.0.2", 60))

    assert len(driver._conn(driver.productions["p1"]).dns._dns.stored) == 1
    assert driver.get_dns("shop.badexample.com") is None
    with pytest.raises(DriverError, match="no Designate zone .* holds shop.badexample.com") as refused:
        driver.switch_dns(DnsRecord("shop.badexample.com", "A", "10.0.0.2", 60))
    assert refused.value.permanent and "prod RegionOne, dr RegionTwo" in str(refused.value)


def test_get_dns_reads_a_cname_when_the_name_has_no_address():
    driver = driver_over({("prod", None): ("example.com.",)})
    driver.switch_dns(DnsRecord("www.example.com", "CNAME", "shop.example.com", 300))

    assert driver.get_dns("www.example.com") == DnsRecord("www.example.com", "CNAME", "shop.example.com", 300)


def test_a_cloud_without_designate_says_so():
    driver = driver_over({("prod", None): ()})
    driver._conn(driver.productions["p0"]).dns.fail = exceptions.EndpointNotFound("dns")

    with pytest.raises(DriverError, match="cloud prod has no DNS .Designate. endpoint") as refused:
        driver.get_dns("shop.example.com")
    assert refused.value.permanent
