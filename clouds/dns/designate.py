"""DNS switches in OpenStack Designate, through openstacksdk's `conn.dns` proxy.

Designate keeps records as recordsets (name + type -> values, TTL) in zones of a
project; its workers then push each change to the DNS servers behind it (BIND,
PowerDNS), and the recordset's status says when they have it: PENDING, then ACTIVE
(or ERROR). A switch here waits for ACTIVE, because a failover that says "DNS
switched" must mean the servers answer with the DR address, not that the API took
the request.

Recordsets are looked up by listing with both `name` and `type` filters, not with
`find_recordset(name)`: a name with an A and a TXT recordset would make that raise
"more than one". Designate has no compare-and-swap on a recordset, so unlike the
rfc2136 provider two writers racing here are last-writer-wins; the failover lock in
Doppel's database keeps Doppels from racing on one production.

Proven against a real Designate whose DNS server is a real BIND, checked with dig
(tests/integration/openstack/test_designate.py); its decisions also through a
stand-in `conn.dns` (tests/unit/dns), see docs/dns.md.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from core.cloud import DnsRecord, ResourceMissing
from core.dns import DnsError, checked_record, normalise_name, same_record


class DesignateProvider:
    """One Designate zone, reached through an openstacksdk connection made from clouds.yaml."""

    name = "designate"

    def __init__(self, connection: Any, zone: str, *, cloud: str = "", wait_seconds: float = 120.0,
                 poll_seconds: float = 2.0, sleep: Callable[[float], None] = time.sleep):
        self.connection, self.cloud = connection, cloud
        self.zone_name = normalise_name(zone) + "."
        self.wait_seconds, self.poll_seconds, self._sleep = wait_seconds, poll_seconds, sleep
        self._zone = None

    @property
    def where(self) -> str:
        return f"Designate zone {self.zone_name}" + (f" (cloud {self.cloud})" if self.cloud else "")

    # --- the three verbs ---------------------------------------------------------------

    def get(self, name: str, type: str = "A") -> DnsRecord | None:
        recordset = self._recordset(normalise_name(name), type.upper())
        return self._record(recordset) if recordset is not None else None

    def switch(self, record: DnsRecord) -> DnsRecord | None:
        record = checked_record(record)
        recordset = self._recordset(record.name, record.type)
        previous = self._record(recordset) if recordset is not None else None
        if previous is not None and len(recordset.records or ()) == 1 and same_record(previous, record):
            return previous
        values = [designate_value(record)]
        changed = self._call(f"switch {record.name} {record.type}", lambda: (
            self.connection.dns.update_recordset(recordset, records=values, ttl=record.ttl) if recordset is not None
            else self.connection.dns.create_recordset(self._find_zone(), name=record.name + ".", type=record.type,
                                                      records=values, ttl=record.ttl)))
        self._wait_active(changed, record.name)
        return previous

    def delete(self, name: str, type: str = "A", ignore_missing: bool = True) -> None:
        name, type = normalise_name(name), type.upper()
        recordset = self._recordset(name, type)
        if recordset is None:
            if not ignore_missing:
                raise ResourceMissing(f"there is no {type} record {name} in {self.where} to delete")
            return
        self._call(f"delete {name} {type}", lambda: self.connection.dns.delete_recordset(
            recordset, zone=self._find_zone(), ignore_missing=True))

    # --- Designate --------------------------------------------------------------------

    def _find_zone(self):
        if self._zone is None:
            zone = self._call("find the zone", lambda: self.connection.dns.find_zone(self.zone_name,
                                                                                   ignore_missing=True))
            if zone is None:
                raise DnsError(f"{self.where} does not exist in this project; create it (openstack zone create "
                               f"{self.zone_name} --email ...) or fix the zone / cloud in doppel.yaml",
                               permanent=True)
            self._zone = zone
        return self._zone

    def _recordset(self, name: str, type: str):
        zone = self._find_zone()
        if not (name + ".").endswith("." + self.zone_name) and name + "." != self.zone_name:
            raise DnsError(f"{name} is not in {self.where}; configure a provider for its zone", permanent=True)
        found = self._call(f"read {name} {type}", lambda: list(
            self.connection.dns.recordsets(zone, name=name + ".", type=type)))
        return found[0] if found else None

    def _record(self, recordset) -> DnsRecord:
        zone = self._find_zone()
        values = sorted(plain_value(recordset.type, value) for value in recordset.records or ())
        ttl = recordset.ttl if recordset.ttl is not None else (getattr(zone, "ttl", None) or 300)
        return DnsRecord(name=normalise_name(recordset.name), type=recordset.type, value=values[0] if values else "",
                         ttl=int(ttl))

    def _wait_active(self, recordset, name: str) -> None:
        """Wait until Designate's workers have pushed the change to its DNS servers."""
        waited = 0.0
        while (getattr(recordset, "status", None) or "ACTIVE") == "PENDING" and waited < self.wait_seconds:
            self._sleep(self.poll_seconds)
            waited += self.poll_seconds
            recordset = self._call(f"check {name}", lambda current=recordset: self.connection.dns.get_recordset(
                current, self._find_zone()))
        status = getattr(recordset, "status", None) or "ACTIVE"
        if status == "ERROR":
            raise DnsError(f"Designate could not push {name} to its DNS servers (recordset status ERROR) in "
                           f"{self.where}; see designate-worker's log", permanent=False)
        if status != "ACTIVE":
            raise DnsError(f"{name} in {self.where} is still {status} after {self.wait_seconds:g} s; Designate's "
                           "workers have not pushed it to the DNS servers yet (designate-worker running?)",
                           permanent=False)

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        """Run an SDK call; its exceptions become DnsError saying what Doppel was doing."""
        from openstack import exceptions

        try:
            return action()
        except exceptions.HttpException as exc:
            status = getattr(exc, "status_code", None)
            permanent = status is not None and 400 <= status < 500 and status not in (408, 409, 429)
            raise DnsError(f"could not {what} in {self.where}: HTTP {status}: {exc.details or exc}; "
                           + ("check the project's DNS quota and role (member) on the zone" if permanent
                              else "retrying"), permanent=permanent) from None
        except exceptions.SDKException as exc:
            raise DnsError(f"could not {what} in {self.where}: {exc}; check clouds.yaml and that the cloud has "
                           "a DNS (Designate) endpoint", permanent=False) from None


def designate_value(record: DnsRecord) -> str:
    """A value as Designate's API wants it: CNAME targets absolute, TXT quoted."""
    if record.type == "CNAME":
        return record.value + "."
    if record.type == "TXT":
        return '"' + record.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return record.value


def plain_value(type: str, value: str) -> str:
    """The inverse of `designate_value`."""
    if type == "CNAME":
        return normalise_name(value)
    if type == "TXT" and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
