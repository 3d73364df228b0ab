"""The local provider on a real records file (the local driver's dns.json)."""
from __future__ import annotations

import json

import pytest

from clouds.local import LocalDriver
from clouds.local.dns import LocalDnsProvider
from core.cloud import DnsRecord, ResourceMissing
from core.dns import DnsProvider

SHOP = "shop.example.com"


@pytest.fixture
def provider(tmp_path):
    return LocalDnsProvider(tmp_path)


def records_file(provider) -> dict:
    return json.loads(provider.path.read_text())["records"]


def test_it_is_a_dns_provider(provider):
    assert isinstance(provider, DnsProvider)


def test_switch_returns_the_previous_record_and_writes_the_new_one(provider):
    assert provider.switch(DnsRecord(SHOP, "A", "127.0.0.10", 300)) is None

    previous = provider.switch(DnsRecord("Shop.Example.com.", "A", "127.0.0.20", 60))

    assert previous == DnsRecord(SHOP, "A", "127.0.0.10", 300)
    assert records_file(provider)[SHOP] == {"name": SHOP, "type": "A", "value": "127.0.0.20", "ttl": 60, "tags": {}}


def test_switching_to_the_current_value_does_not_rewrite_the_file(provider):
    provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", 60))
    before = provider.path.stat()

    again = provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", 60))

    assert again == DnsRecord(SHOP, "A", "127.0.0.20", 60)
    after = provider.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_record_made_for_an_environment_keeps_its_tags_across_a_switch(provider):
    tags = {"doppel-env": "dr-shop", "doppel-key": "failover:shop"}
    provider.path.write_text(json.dumps({"records": {SHOP: {
        "name": SHOP, "type": "A", "value": "127.0.0.10", "ttl": 300, "tags": tags}}}))

    provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", 60))

    assert records_file(provider)[SHOP]["tags"] == tags
    assert [r.name for r in LocalDriver(provider.state_dir, {}).find_tagged({"doppel-env": "dr-shop"})] == [SHOP]


def test_get_answers_only_for_the_type_asked(provider):
    provider.switch(DnsRecord(SHOP, "CNAME", "dr.example.com", 60))

    assert provider.get(SHOP, "A") is None
    assert provider.get(SHOP, "CNAME") == DnsRecord(SHOP, "CNAME", "dr.example.com", 60)


def test_delete_removes_the_record_and_is_safe_to_repeat(provider):
    provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", 60))

    provider.delete(SHOP, "A")
    provider.delete(SHOP, "A")

    assert provider.get(SHOP) is None and SHOP not in records_file(provider)
    with pytest.raises(ResourceMissing, match="no A record shop.example.com"):
        provider.delete(SHOP, "A", ignore_missing=False)


def test_delete_of_another_type_leaves_the_record(provider):
    provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", 60))

    provider.delete(SHOP, "TXT")

    assert provider.get(SHOP) == DnsRecord(SHOP, "A", "127.0.0.20", 60)


def test_the_driver_and_the_provider_keep_one_records_file(tmp_path):
    driver = LocalDriver(tmp_path, {})
    driver.switch_dns(DnsRecord(SHOP, "A", "127.0.0.10", 300))

    previous = LocalDnsProvider(tmp_path).switch(DnsRecord(SHOP, "A", "127.0.0.20", 60))

    assert previous == DnsRecord(SHOP, "A", "127.0.0.10", 300)
    assert driver.get_dns(SHOP) == driver.dns.get(SHOP) == DnsRecord(SHOP, "A", "127.0.0.20", 60)
