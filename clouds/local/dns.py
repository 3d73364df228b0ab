"""DNS switches in the local driver's records file (`dns.json` in its state directory).

The embedded cloud has no DNS server; its records file is what its environments'
`dns_name`s and a local failover point at. This provider goes through the local
driver's own verbs, so it takes the driver's lock and keeps its format and its tags
(a record made for an environment keeps its `doppel-env` tag across switches, and
compensation still finds it).

The file holds one record per name, whatever its type: switching a name to an A
record replaces a CNAME there, and returns that CNAME as the previous record.
"""
from __future__ import annotations

from pathlib import Path

from core.cloud import DnsRecord, ResourceMissing, TaggedResource
from core.dns import checked_record, normalise_name, same_record
from clouds.local.driver import DNS_KIND, LocalDriver


class LocalDnsProvider:
    """The records of one local driver state directory."""

    name = "local"

    def __init__(self, driver: LocalDriver):
        self.driver = driver

    @classmethod
    def for_state_dir(cls, state_dir: Path | str) -> "LocalDnsProvider":
        """A provider on its own: a driver with no productions, used only for its records file."""
        return cls(LocalDriver(Path(state_dir), {}))

    def get(self, name: str, type: str = "A") -> DnsRecord | None:
        record = self.driver.get_dns(normalise_name(name))
        return record if record is not None and record.type == type.upper() else None

    def switch(self, record: DnsRecord) -> DnsRecord | None:
        record = checked_record(record)
        current = self.driver.get_dns(record.name)
        if same_record(current, record):
            return current  # no write: a replayed switch leaves the file as it is
        return self.driver.switch_dns(record)

    def delete(self, name: str, type: str = "A", ignore_missing: bool = True) -> None:
        name, type = normalise_name(name), type.upper()
        if self.get(name, type) is None:
            if not ignore_missing:
                raise ResourceMissing(f"there is no {type} record {name} in {self.driver.state_dir / 'dns.json'} "
                                      "to delete")
            return
        self.driver.delete_resource(TaggedResource(DNS_KIND, name, name), ignore_missing=True)
