"""The DNS provider interface: what a failover needs from DNS, whatever serves the zone.

A failover points a name at the DR copy and a failback points it back, so a switch
returns the record it replaced: that is what the failback restores. Every verb is
safe to repeat: switching a name to the value it already has changes nothing and
still returns the record, so a retried failover does not fail on its own success.

Providers: `rfc2136` (any standard DNS server, e.g. BIND, through dynamic updates
signed with TSIG), `designate` (OpenStack) and `local` (the local driver's records
file). `clouds.dns.make_dns_provider(spec)` builds one from its configuration.
"""
from __future__ import annotations

import ipaddress
from typing import Protocol, runtime_checkable

from core.cloud import DnsRecord, DriverError

RECORD_TYPES = ("A", "AAAA", "CNAME", "TXT")


class DnsError(DriverError):
    """A DNS read or change failed; the message says what, on which name, and what to do."""


class DnsConflict(DnsError):
    """The record changed between our read and our update (someone else switched it).

    Not permanent: a retry reads the new value and switches from there, and the record
    it then returns as "previous" is the one it really replaced.
    """

    def __init__(self, message: str):
        super().__init__(message, permanent=False)


@runtime_checkable
class DnsProvider(Protocol):
    """One zone's records, behind whatever serves them. Every verb is safe to repeat."""

    name: str  # "rfc2136", "designate", "local"

    def get(self, name: str, type: str = "A") -> DnsRecord | None:
        """The record as the authority serves it now, or None when there is none."""

    def switch(self, record: DnsRecord) -> DnsRecord | None:
        """Point `record.name` at `record.value` (with its TTL), replacing all values of that type.

        Returns the record as it was (None if there was none). When the record already
        has that value and TTL nothing is changed and the record is returned.
        """

    def delete(self, name: str, type: str = "A", ignore_missing: bool = True) -> None:
        """Remove every value of `type` at `name`; ResourceMissing if none and not ignore_missing."""


def normalise_name(name: str) -> str:
    """The form DnsRecord holds: lower case, no trailing dot (DNS names compare without case)."""
    return name.strip().rstrip(".").lower()


def checked_record(record: DnsRecord) -> DnsRecord:
    """The record with its name normalised, refused early when a server would refuse it later.

    Checking here gives a message that names the record, instead of a FORMERR or a
    half-understood SDK error from the far end.
    """
    record_type = record.type.upper()
    if record_type not in RECORD_TYPES:
        raise DnsError(f"cannot switch {record.name}: record type {record.type!r} is not one of "
                       f"{', '.join(RECORD_TYPES)}", permanent=True)
    name = normalise_name(record.name)
    if not name or ".." in name:
        raise DnsError(f"{record.name!r} is not a DNS name; write it fully qualified, e.g. shop.example.com",
                       permanent=True)
    if not 0 <= int(record.ttl) <= 2_147_483_647:
        raise DnsError(f"cannot switch {name}: TTL {record.ttl} is outside 0..2147483647 seconds",
                       permanent=True)
    value = _checked_value(name, record_type, record.value)
    return DnsRecord(name=name, type=record_type, value=value, ttl=int(record.ttl))


def _checked_value(name: str, record_type: str, value: str) -> str:
    if record_type in ("A", "AAAA"):
        version = 4 if record_type == "A" else 6
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            address = None
        if address is None or address.version != version:
            raise DnsError(f"cannot switch {name}: {value!r} is not an IPv{version} address, which an "
                           f"{record_type} record needs", permanent=True)
        return str(address)
    if record_type == "CNAME":
        target = normalise_name(value)
        if not target:
            raise DnsError(f"cannot switch {name}: a CNAME needs a target name", permanent=True)
        return target
    return value


def same_record(current: DnsRecord | None, wanted: DnsRecord) -> bool:
    """True when `current` already says what `wanted` says (name, type, value and TTL)."""
    return current is not None and (current.name, current.type, current.value, current.ttl) == (
        wanted.name, wanted.type, wanted.value, wanted.ttl)
