"""The Designate provider's logic, through a small in-memory stand-in for openstacksdk's `conn.dns`.

The stand-in holds the SDK's own Zone and Recordset resource classes and answers the
five proxy calls the provider makes, as Designate's API documents them (PENDING until
pushed to the DNS servers, then ACTIVE). It proves the provider's decisions, not that
a real Designate agrees: see docs/dns.md.
"""
from __future__ import annotations

import itertools

import pytest
import requests
from openstack import exceptions
from openstack.dns.v2.recordset import Recordset
from openstack.dns.v2.zone import Zone

from clouds.dns.designate import DesignateProvider
from core.cloud import DnsRecord, ResourceMissing
from core.dns import DnsError, DnsProvider

SHOP = "shop.example.com"


class DesignateDns:
    """Just enough of `conn.dns`: a zone's recordsets, each PENDING for `pending_polls` reads after a change."""

    def __init__(self, zones=("example.com.",), pending_polls=0, final_status="ACTIVE"):
        self.zones = {name: Zone(id=f"zone-{i}", name=name, ttl=3600) for i, name in enumerate(zones)}
        self.stored: dict[str, Recordset] = {}
        self.pending_polls, self.final_status = pending_polls, final_status
        self.polls_left: dict[str, int] = {}
        self.calls: list[str] = []
        self.ids = itertools.count(1)
        self.fail_with: exceptions.SDKException | None = None

    def _call(self, name):
        self.calls.append(name)
        if self.fail_with:
            raise self.fail_with

    def find_zone(self, name_or_id, ignore_missing=True):
        self._call("find_zone")
        return self.zones.get(name_or_id)

    def recordsets(self, zone, **query):
        self._call("recordsets")
        return iter([r for r in self.stored.values() if r.zone_id == zone.id
                     and all(getattr(r, k) == v for k, v in query.items())])

    def create_recordset(self, zone, **attrs):
        self._call("create_recordset")
        recordset = Recordset(id=f"rs-{next(self.ids)}", zone_id=zone.id, **attrs)
        self.stored[recordset.id] = recordset
        return self._changed(recordset)

    def update_recordset(self, recordset, **attrs):
        self._call("update_recordset")
        stored = self.stored[recordset.id]
        _set(stored, **attrs)
        return self._changed(stored)

    def get_recordset(self, recordset, zone):
        self._call("get_recordset")
        stored = self.stored[recordset.id]
        if self.polls_left.get(stored.id, 0) > 0:
            self.polls_left[stored.id] -= 1
        if self.polls_left.get(stored.id, 0) == 0:
            _set(stored, status=self.final_status)
        return stored

    def delete_recordset(self, recordset, zone=None, ignore_missing=True):
        self._call("delete_recordset")
        self.stored.pop(recordset.id, None)

    def _changed(self, recordset):
        if self.pending_polls:
            _set(recordset, status="PENDING")
            self.polls_left[recordset.id] = self.pending_polls
        else:
            _set(recordset, status="ACTIVE")
        return recordset


def _set(resource, **attrs):
    for name, value in attrs.items():
        setattr(resource, name, value)


class Connection:
    def __init__(self, dns):
        self.dns = dns


def provider_on(dns, **options) -> DesignateProvider:
    sleeps = []
    provider = DesignateProvider(Connection(dns), "example.com", cloud="dr", sleep=sleeps.append, **options)
    provider.sleeps = sleeps
    return provider


def test_it_is_a_dns_provider():
    assert isinstance(provider_on(DesignateDns()), DnsProvider)


def test_a_new_name_is_created_as_an_absolute_recordset_with_its_ttl():
    dns = DesignateDns()

    previous = provider_on(dns).switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    (made,) = dns.stored.values()
    assert previous is None
    assert (made.name, made.type, made.records, made.ttl) == ("shop.example.com.", "A", ["203.0.113.20"], 60)


def test_an_existing_recordset_is_updated_in_place_and_the_old_record_returned():
    dns = DesignateDns()
    provider = provider_on(dns)
    provider.switch(DnsRecord(SHOP, "A", "203.0.113.10", 300))

    previous = provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert previous == DnsRecord(SHOP, "A", "203.0.113.10", 300)
    assert [r.records for r in dns.stored.values()] == [["203.0.113.20"]]
    assert dns.calls.count("create_recordset") == 1 and dns.calls.count("update_recordset") == 1


def test_switching_to_the_current_value_sends_no_change():
    dns = DesignateDns()
    provider = provider_on(dns)
    provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))
    dns.calls.clear()

    again = provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert again == DnsRecord(SHOP, "A", "203.0.113.20", 60)
    assert "update_recordset" not in dns.calls and "create_recordset" not in dns.calls


def test_a_txt_recordset_beside_the_a_record_is_a_different_record():
    dns = DesignateDns()
    provider = provider_on(dns)
    provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    provider.switch(DnsRecord(SHOP, "TXT", 'owner "ops"', 60))

    assert provider.get(SHOP, "A").value == "203.0.113.20"
    assert provider.get(SHOP, "TXT").value == 'owner "ops"'
    assert sorted(r.records[0] for r in dns.stored.values()) == ['"owner \\"ops\\""', "203.0.113.20"]


def test_a_switch_waits_until_designate_has_pushed_it_to_the_dns_servers():
    dns = DesignateDns(pending_polls=3)
    provider = provider_on(dns, poll_seconds=2)

    provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert dns.calls.count("get_recordset") == 3 and provider.sleeps == [2, 2, 2]


def test_a_push_that_never_finishes_is_a_retryable_error():
    dns = DesignateDns(pending_polls=100)
    provider = provider_on(dns, wait_seconds=6, poll_seconds=2)

    with pytest.raises(DnsError, match="still PENDING after 6 s") as error:
        provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))
    assert not error.value.permanent


def test_a_push_that_fails_says_where_to_look():
    dns = DesignateDns(pending_polls=1, final_status="ERROR")

    with pytest.raises(DnsError, match="status ERROR.*designate-worker"):
        provider_on(dns).switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))


def test_a_missing_zone_says_how_to_create_it():
    with pytest.raises(DnsError, match="example.com. .*does not exist.*openstack zone create") as error:
        provider_on(DesignateDns(zones=("other.org.",))).get(SHOP)
    assert error.value.permanent


def test_a_name_outside_the_zone_is_refused():
    with pytest.raises(DnsError, match="not in Designate zone example.com."):
        provider_on(DesignateDns()).switch(DnsRecord("shop.example.org", "A", "203.0.113.20"))


def test_a_forbidden_call_is_permanent_and_a_server_error_is_not():
    dns = DesignateDns()
    provider = provider_on(dns)
    provider.get(SHOP)  # the zone is found and kept
    dns.fail_with = exceptions.ForbiddenException("policy does not allow", response=http_response(403))

    with pytest.raises(DnsError, match="HTTP 403") as forbidden:
        provider.switch(DnsRecord(SHOP, "A", "203.0.113.20"))
    dns.fail_with = exceptions.HttpException("service unavailable", response=http_response(503))
    with pytest.raises(DnsError, match="HTTP 503") as unavailable:
        provider.switch(DnsRecord(SHOP, "A", "203.0.113.20"))

    assert forbidden.value.permanent and not unavailable.value.permanent


def http_response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code, response.url = status, "http://designate.invalid/v2/zones"
    return response


def test_delete_is_safe_to_repeat():
    dns = DesignateDns()
    provider = provider_on(dns)
    provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    provider.delete(SHOP, "A")
    provider.delete(SHOP, "A")

    assert dns.stored == {}
    with pytest.raises(ResourceMissing):
        provider.delete(SHOP, "A", ignore_missing=False)
