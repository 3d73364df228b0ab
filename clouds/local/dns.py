"""The local driver's DNS records file (`dns.json` in its state directory), and the DNS provider on it.

The embedded cloud has no DNS server; its records file is what its environments'
`dns_name`s and a local failover point at. This module is the one place that reads
and writes it: the local driver keeps its environments' records through it (under
the driver's lock, with their tags), and a DR policy switches names through it as a
`DnsProvider`. A record made for an environment keeps its `doppel-env` tag across
switches, so compensation still finds it.

The file holds one record per name, whatever its type: switching a name to an A
record replaces a CNAME there, and returns that CNAME as the previous record.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from clouds.local import state
from core.cloud import DnsRecord, ResourceMissing, TaggedResource, tags_match
from core.dns import checked_record, normalise_name, same_record

DNS_KIND = "dns_record"


class LocalDnsProvider:
    """The records of one local driver state directory."""

    name = "local"

    def __init__(self, state_dir: Path | str):
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.state_dir / "dns.json"
        self._lock_file = self.state_dir / ".lock"  # the local driver's lock: one writer of the state directory

    # --- the DnsProvider verbs (each takes the lock) ---------------------------------------

    def get(self, name: str, type: str = "A") -> DnsRecord | None:
        record = self.record(name)
        return record if record is not None and record.type == type.upper() else None

    def switch(self, record: DnsRecord) -> DnsRecord | None:
        record = checked_record(record)
        current = self.record(record.name)
        if same_record(current, record):
            return current  # no write: a replayed switch leaves the file as it is
        with state.locked(self._lock_file):
            return self.put(record, None)

    def delete(self, name: str, type: str = "A", ignore_missing: bool = True) -> None:
        name, type = normalise_name(name), type.upper()
        if self.get(name, type) is None:
            if not ignore_missing:
                raise ResourceMissing(f"there is no {type} record {name} in {self.path} to delete")
            return
        with state.locked(self._lock_file):
            self.drop(None, name=name)

    # --- the file, for the local driver ---------------------------------------------------

    def records(self) -> dict:
        return (state.read_json(self.path) or {}).get("records", {})

    def record(self, name: str) -> DnsRecord | None:
        record = self.records().get(normalise_name(name))
        return DnsRecord.from_dict(record) if record else None

    def tagged(self, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        """The records that carry tags, and all of `tag_filter`'s."""
        return [TaggedResource(DNS_KIND, name, name, dict(record["tags"]))
                for name, record in sorted(self.records().items())
                if tags_match(record.get("tags", {}), tag_filter) and record.get("tags")]

    def put(self, record: DnsRecord, tags: Mapping | None) -> DnsRecord | None:
        """Write one record (caller holds the lock); returns the one it replaced."""
        records = self.records()
        name = normalise_name(record.name)
        previous = records.get(name)
        kept_tags = dict(tags) if tags is not None else (previous or {}).get("tags", {})
        records[name] = {**DnsRecord(name, record.type, record.value, record.ttl).to_dict(), "tags": kept_tags}
        state.write_json(self.path, {"records": records})
        return DnsRecord.from_dict(previous) if previous else None

    def drop(self, tag_filter: Mapping | None, name: str | None = None) -> list[str]:
        """Delete records by tags or by name (caller holds the lock); returns the names deleted."""
        records = self.records()
        doomed = [n for n, r in records.items()
                  if (name is not None and n == normalise_name(name)) or
                  (tag_filter is not None and r.get("tags") and tags_match(r["tags"], tag_filter))]
        if doomed:
            for doomed_name in doomed:
                del records[doomed_name]
            state.write_json(self.path, {"records": records})
        return doomed
