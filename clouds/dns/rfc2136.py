"""DNS switches on any standard DNS server (BIND, Knot, PowerDNS ...) by RFC 2136 dynamic update.

Each update is signed with a TSIG key (RFC 8945): the server checks it against the key
it was given, and its `allow-update` / `update-policy` says what that key may change.
Reads go straight to that server (never the system resolver, whose cache would show
the old value for up to a TTL and hide whether the switch happened).

A switch is one UPDATE message, which the server applies whole or not at all:

    prerequisite  the rrset is exactly what we read (or: there is no such rrset)
    update        delete the rrset; add the new record with its TTL

The prerequisite makes the switch a compare-and-swap. Two Doppels (or a Doppel and a
person) switching the same name at once cannot interleave: the second update finds
the rrset changed and the server rejects it whole (NXRRSET / YXRRSET), so nothing is
lost silently and the record a switch returns as "previous" is always the one it
really replaced — which is what a failback puts back. A value-independent
prerequisite ("the rrset exists") would not notice a rival's change; the zone's SOA
serial would, but would also fail on any unrelated change elsewhere in the zone.
"""
from __future__ import annotations

import base64
import binascii

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from core.cloud import DnsRecord, ResourceMissing
from core.dns import DnsConflict, DnsError, checked_record, normalise_name, same_record

ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")


class Rfc2136Provider:
    """One zone on one DNS server, changed by TSIG-signed dynamic updates."""

    name = "rfc2136"

    def __init__(self, server: str, zone: str, key_name: str, secret: str, *, port: int = 53,
                 algorithm: str = "hmac-sha256", timeout: float = 5.0, secret_source: str = "the TSIG secret"):
        self.server, self.port, self.timeout = server, int(port), float(timeout)
        self.zone = dns.name.from_text(normalise_name(zone))
        self.key_name, self.algorithm, self.secret_source = key_name, algorithm, secret_source
        self.key = make_key(key_name, secret, algorithm, secret_source)

    @property
    def where(self) -> str:
        return f"{self.server}:{self.port}"

    # --- the three verbs ---------------------------------------------------------------

    def get(self, name: str, type: str = "A") -> DnsRecord | None:
        return record_from_rdataset(normalise_name(name), type.upper(), self._read(name, type))

    def switch(self, record: DnsRecord) -> DnsRecord | None:
        """Compare-and-swap the rrset; see the module docstring for why a prerequisite."""
        record = checked_record(record)
        self._check_in_zone(record.name)
        current = self._read(record.name, record.type)
        previous = record_from_rdataset(record.name, record.type, current)
        if len(current or ()) == 1 and same_record(previous, record):
            return previous
        response = self._send(switch_message(self.zone, self.key, record, current), record.name)
        if response.rcode() in (dns.rcode.NXRRSET, dns.rcode.YXRRSET):
            return self._after_race(record, previous)
        self._raise_for_update(response, record.name)
        self._confirm(record)
        return previous

    def delete(self, name: str, type: str = "A", ignore_missing: bool = True) -> None:
        name, type = normalise_name(name), type.upper()
        self._check_in_zone(name)
        response = self._send(delete_message(self.zone, self.key, name, type, must_exist=not ignore_missing), name)
        if response.rcode() == dns.rcode.NXRRSET:
            raise ResourceMissing(f"there is no {type} record {name} in zone {self.zone.to_text(True)} on "
                                  f"{self.where} to delete")
        self._raise_for_update(response, name)

    # --- talking to the server ---------------------------------------------------------

    def _read(self, name: str, type: str) -> dns.rdataset.Rdataset | None:
        """The rrset as the server holds it, asked of the server itself, not a resolver."""
        name = normalise_name(name)
        query = dns.message.make_query(name, type.upper())
        query.flags &= ~dns.flags.RD  # an authority answers from its zone; nothing to recurse for
        try:
            response, _ = dns.query.udp_with_fallback(query, self.server, timeout=self.timeout, port=self.port)
        except (dns.exception.Timeout, OSError) as exc:
            raise self._unreachable(f"read {type} {name}", exc) from None
        return rdataset_from_answer(response, name, type.upper(), self.where)

    def _send(self, update: dns.update.UpdateMessage, name: str) -> dns.message.Message:
        """Send over TCP: an update is not retransmitted blindly, and a large one is not truncated."""
        try:
            return dns.query.tcp(update, self.server, timeout=self.timeout, port=self.port)
        except dns.tsig.PeerError as exc:
            raise DnsError(tsig_refusal(exc, name, self.where, self.key_name, self.algorithm, self.zone,
                                        self.secret_source), permanent=True) from None
        except (dns.exception.Timeout, OSError, EOFError) as exc:
            raise self._unreachable(f"update {name}", exc) from None

    def _unreachable(self, what: str, exc: BaseException) -> DnsError:
        reason = "no answer" if isinstance(exc, dns.exception.Timeout) else (str(exc) or type(exc).__name__)
        return DnsError(f"could not {what} on DNS server {self.where}: {reason} (after {self.timeout:g} s); "
                        "is the server running and reachable from this host? retrying", permanent=False)

    def _raise_for_update(self, response: dns.message.Message, name: str) -> None:
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            message, permanent = update_refusal(rcode, name, self.where, self.key_name, self.zone)
            raise DnsError(message, permanent=permanent)

    def _after_race(self, record: DnsRecord, previous: DnsRecord | None) -> DnsRecord | None:
        """The rrset changed under us. Someone switching to the same value is success; anything else is not."""
        now = self.get(record.name, record.type)
        if same_record(now, record):
            return previous
        was = previous.value if previous else "nothing"
        raise DnsConflict(f"{record.name} {record.type} changed on {self.where} while Doppel switched it "
                          f"(it read {was}, it is now {now.value if now else 'gone'}): another Doppel or a "
                          f"person switched it at the same time; nothing was changed by this switch. Check who "
                          f"owns the name; a retry switches from the new value")

    def _confirm(self, record: DnsRecord) -> None:
        """Read back: a server may accept an update and ignore part of it (an A beside a CNAME)."""
        now = self.get(record.name, record.type)
        if same_record(now, record):
            return
        if now is not None:  # our update landed, and someone else's right after it
            raise DnsConflict(f"{record.name} {record.type} was switched to {record.value} on {self.where}, but "
                              f"it already says {now.value}: another Doppel or a person switched it right after; "
                              "check who owns the name")
        raise DnsError(f"DNS server {self.where} accepted the switch of {record.name} to {record.value} but serves "
                       f"no {record.type} record there; is there a CNAME at that name, or another primary for "
                       f"zone {self.zone.to_text(True)}?", permanent=True)

    def _check_in_zone(self, name: str) -> None:
        if not dns.name.from_text(name).is_subdomain(self.zone):
            raise DnsError(f"{name} is not in zone {self.zone.to_text(True)}, the zone this provider updates on "
                           f"{self.where}; configure a provider for its zone", permanent=True)


# --- messages: pure functions, so tests can look at what goes on the wire -------------


def make_key(key_name: str, secret: str, algorithm: str, secret_source: str = "the TSIG secret") -> dns.tsig.Key:
    """The TSIG key, refused here when the secret is not base64 (as tsig-keygen writes it)."""
    if algorithm not in ALGORITHMS:
        raise DnsError(f"TSIG algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}", permanent=True)
    try:
        if not base64.b64decode(secret.strip(), validate=True):
            raise ValueError("empty")
    except (binascii.Error, ValueError):
        raise DnsError(f"{secret_source} is not a base64 TSIG secret; copy the secret \"...\" value of key "
                       f"{key_name} from the server's config (tsig-keygen prints one)", permanent=True) from None
    return dns.tsig.Key(key_name, secret.strip(), algorithm)


def switch_message(zone: dns.name.Name, key: dns.tsig.Key, record: DnsRecord,
                   current: dns.rdataset.Rdataset | None) -> dns.update.UpdateMessage:
    """One UPDATE: prerequisite "the rrset is `current`" (or absent), delete it, add `record`."""
    update = dns.update.UpdateMessage(zone, keyring=key)
    name = dns.name.from_text(record.name)
    if current:
        # RFC 2136 3.2.5: a prerequisite's TTL must be 0, or the server answers FORMERR.
        update.present(name, dns.rdataset.from_rdata_list(0, list(current)))
    else:
        update.absent(name, record.type)
    update.delete(name, record.type)
    update.add(name, record.ttl, rdata_of(record))
    return update


def delete_message(zone: dns.name.Name, key: dns.tsig.Key, name: str, type: str,
                   must_exist: bool) -> dns.update.UpdateMessage:
    """One UPDATE deleting the rrset; with `must_exist`, a prerequisite that it exists."""
    update = dns.update.UpdateMessage(zone, keyring=key)
    absolute = dns.name.from_text(name)  # a str would be taken as relative to the zone
    if must_exist:
        update.present(absolute, type)
    update.delete(absolute, type)
    return update


def rdata_of(record: DnsRecord) -> dns.rdata.Rdata:
    """The record's value as DNS data: CNAME targets absolute, TXT values quoted in 255-byte strings."""
    rdtype = dns.rdatatype.from_text(record.type)
    if record.type == "TXT":
        raw = record.value.encode()
        chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    text = record.value.rstrip(".") + "." if record.type == "CNAME" else record.value
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)


def value_of(rdata: dns.rdata.Rdata) -> str:
    """The DnsRecord value of one rdata: the inverse of `rdata_of`."""
    if rdata.rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    if rdata.rdtype == dns.rdatatype.CNAME:
        return normalise_name(rdata.target.to_text())
    return rdata.to_text()


def record_from_rdataset(name: str, type: str, rdataset: dns.rdataset.Rdataset | None) -> DnsRecord | None:
    """A DnsRecord for an rrset; of several values (round robin), the lowest, so reads are stable."""
    if not rdataset:
        return None
    value = sorted(value_of(rdata) for rdata in rdataset)[0]
    return DnsRecord(name=name, type=type, value=value, ttl=int(rdataset.ttl))


def rdataset_from_answer(response: dns.message.Message, name: str, type: str,
                         where: str) -> dns.rdataset.Rdataset | None:
    """The rrset the authority answered with; None for NXDOMAIN or no data of that type."""
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DnsError(f"DNS server {where} answered {dns.rcode.to_text(rcode)} to the query for {name} {type}; "
                       "does it serve that zone, and may this host query it (allow-query)? see its log",
                       permanent=rcode != dns.rcode.SERVFAIL)
    if not response.flags & dns.flags.AA:
        raise DnsError(f"DNS server {where} is not authoritative for {name} (its answer lacks the AA flag); "
                       "point the provider's server at the zone's primary", permanent=True)
    if rcode == dns.rcode.NXDOMAIN:
        return None
    wanted = dns.name.from_text(name)
    for rrset in response.answer:
        if rrset.name == wanted and rrset.rdtype == dns.rdatatype.from_text(type):
            return rrset
    return None


def update_refusal(rcode: int, name: str, where: str, key_name: str, zone: dns.name.Name) -> tuple[str, bool]:
    """What a refused update means and what to do, and whether a retry can help."""
    zone_text = zone.to_text(True)
    head = f"DNS server {where} refused the update for {name}: {dns.rcode.to_text(rcode)}"
    if rcode == dns.rcode.REFUSED:
        return (f"{head} — is the TSIG key {key_name} allowed to update zone {zone_text} "
                f"(allow-update or update-policy in the zone's config)?", True)
    if rcode == dns.rcode.NOTAUTH:
        return (f"{head} — is {where} the primary server of zone {zone_text}, and is the TSIG key "
                f"{key_name} allowed to update it?", True)
    if rcode == dns.rcode.NOTZONE:
        return f"{head} — {name} is not inside zone {zone_text} as that server sees it", True
    if rcode == dns.rcode.SERVFAIL:
        return f"{head} — the server failed to apply it; see its log (journal file writable?); retrying", False
    return f"{head} — see the server's log", True


def tsig_refusal(exc: dns.tsig.PeerError, name: str, where: str, key_name: str, algorithm: str,
                 zone: dns.name.Name, secret_source: str) -> str:
    """The server rejected our TSIG signature: say which part of the key is wrong."""
    head = f"DNS server {where} refused the update for {name} in zone {zone.to_text(True)}"
    if isinstance(exc, dns.tsig.PeerBadKey):
        return (f"{head}: BADKEY — it has no TSIG key named {key_name} with algorithm {algorithm}; add the key "
                f"to the server's config (docs/dns.md) or fix key_name/algorithm")
    if isinstance(exc, dns.tsig.PeerBadTime):
        return f"{head}: BADTIME — this host's clock and the server's differ by more than 5 minutes; fix NTP"
    return (f"{head}: BADSIG — the TSIG signature did not verify: {secret_source} is not the secret of key "
            f"{key_name} on the server (or its algorithm is not {algorithm}); copy the secret from the server's "
            f"key clause")
