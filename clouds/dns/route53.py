"""DNS switches in Amazon Route 53, through boto3 (the standard credential chain).

A switch is one UPSERT of the record set (name + type -> one value, TTL) in the
hosted zone, then a wait until Route 53 says the change is INSYNC: a failover that
says "DNS switched" must mean Route 53's servers answer with the DR address, not that
the API took the request. Route 53 has no compare-and-swap on a record set (a DELETE
must name the values exactly, an UPSERT replaces them), so two writers racing are
last-writer-wins; the failover lock in Doppel's database keeps Doppels from racing on
one production.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from core.cloud import DnsRecord, ResourceMissing
from core.dns import DnsError, checked_record, normalise_name, same_record


class Route53Provider:
    """One Route 53 hosted zone, by its name (or id), in the account boto3's chain reaches."""

    name = "route53"

    def __init__(self, zone: str, *, zone_id: str | None = None, profile: str | None = None,
                 wait_seconds: float = 120.0, poll_seconds: float = 2.0, client: Any = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.zone_name = normalise_name(zone) + "."
        self._zone_id = zone_id
        self.wait_seconds, self.poll_seconds, self._sleep = wait_seconds, poll_seconds, sleep
        if client is None:
            import boto3
            client = boto3.session.Session(profile_name=profile).client("route53", region_name="us-east-1")
        self.client = client

    @property
    def where(self) -> str:
        return f"Route 53 hosted zone {self.zone_name}"

    # --- the three verbs ---------------------------------------------------------------

    def get(self, name: str, type: str = "A") -> DnsRecord | None:
        found = self._record_set(normalise_name(name), type.upper())
        return _record(found) if found is not None else None

    def switch(self, record: DnsRecord) -> DnsRecord | None:
        record = checked_record(record)
        current = self._record_set(record.name, record.type)
        previous = _record(current) if current is not None else None
        if previous is not None and len(current.get("ResourceRecords", ())) == 1 and same_record(previous, record):
            return previous
        self._change(f"switch {record.name} {record.type}", "UPSERT", {
            "Name": record.name + ".", "Type": record.type, "TTL": record.ttl,
            "ResourceRecords": [{"Value": _value(record)}]})
        return previous

    def delete(self, name: str, type: str = "A", ignore_missing: bool = True) -> None:
        name, type = normalise_name(name), type.upper()
        current = self._record_set(name, type)
        if current is None:
            if not ignore_missing:
                raise ResourceMissing(f"there is no {type} record {name} in {self.where} to delete")
            return
        self._change(f"delete {name} {type}", "DELETE", current)  # DELETE names the values exactly

    # --- Route 53 ---------------------------------------------------------------------

    def _zone(self) -> str:
        if self._zone_id is None:
            zones = self._call("find the hosted zone", lambda: self.client.list_hosted_zones_by_name(
                DNSName=self.zone_name, MaxItems="1")["HostedZones"])
            found = [z for z in zones if z["Name"].lower() == self.zone_name and not z["Config"].get("PrivateZone")]
            if not found:
                raise DnsError(f"there is no public {self.where} in this account; create it, or fix the zone of "
                               "the DNS provider", permanent=True)
            self._zone_id = found[0]["Id"].rsplit("/", 1)[-1]
        return self._zone_id

    def _record_set(self, name: str, type: str) -> dict | None:
        answer = self._call(f"read {name} {type}", lambda: self.client.list_resource_record_sets(
            HostedZoneId=self._zone(), StartRecordName=name + ".", StartRecordType=type, MaxItems="1"))
        for found in answer.get("ResourceRecordSets", ()):
            if normalise_name(found["Name"]) == name and found["Type"] == type:
                return found
        return None

    def _change(self, what: str, action: str, record_set: dict) -> None:
        answer = self._call(what, lambda: self.client.change_resource_record_sets(
            HostedZoneId=self._zone(), ChangeBatch={"Comment": f"Doppel: {what}",
                                                    "Changes": [{"Action": action, "ResourceRecordSet": record_set}]}))
        change = answer["ChangeInfo"]
        waited = 0.0
        while change["Status"] != "INSYNC" and waited < self.wait_seconds:
            self._sleep(self.poll_seconds)
            waited += self.poll_seconds
            change = self._call(f"check {what}", lambda: self.client.get_change(Id=change["Id"])["ChangeInfo"])  # noqa: B023
        if change["Status"] != "INSYNC":
            raise DnsError(f"{what} in {self.where} is still {change['Status']} after {self.wait_seconds:g} s; "
                           "Route 53 has not propagated it yet", permanent=False)

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except DnsError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore's errors, and connection errors
            error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
            code = error.get("Code", exc.__class__.__name__)
            permanent = code in ("InvalidInput", "InvalidChangeBatch", "NoSuchHostedZone", "AccessDenied")
            raise DnsError(f"could not {what} in {self.where}: {code}: {error.get('Message', str(exc))[:300]}"
                           f"{'' if permanent else '; it is retried'}", permanent=permanent) from None


def _value(record: DnsRecord) -> str:
    if record.type == "TXT" and not record.value.startswith('"'):
        return f'"{record.value}"'
    if record.type == "CNAME":
        return record.value.rstrip(".") + "."
    return record.value


def _record(found: dict) -> DnsRecord:
    value = (found.get("ResourceRecords") or [{"Value": ""}])[0]["Value"]
    if found["Type"] == "TXT":
        value = value.strip('"')
    elif found["Type"] == "CNAME":
        value = value.rstrip(".")
    return DnsRecord(normalise_name(found["Name"]), found["Type"], value, int(found.get("TTL", 0)))
