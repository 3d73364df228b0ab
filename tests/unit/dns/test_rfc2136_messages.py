"""What the rfc2136 provider puts on the wire and how it reads answers, with real dnspython messages."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest

from clouds.dns.rfc2136 import (
    Rfc2136Provider,
    delete_message,
    make_key,
    rdata_of,
    rdataset_from_answer,
    record_from_rdataset,
    switch_message,
    update_refusal,
    value_of,
)
from core.cloud import DnsRecord
from core.dns import DnsError

ZONE = dns.name.from_text("example.com")
SECRET = "c2VjcmV0LW9mLXRoZS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm"
KEY = make_key("doppel-key", SECRET, "hmac-sha256")


def on_the_wire(message) -> dns.message.Message:
    """The message as the server sees it: signed bytes, parsed and verified with the same key."""
    return dns.message.from_wire(message.to_wire(), keyring={dns.name.from_text("doppel-key"): KEY})


def test_a_switch_is_one_signed_update_that_checks_the_old_value_then_replaces_it():
    current = dns.rdataset.from_text("IN", "A", 300, "127.0.0.10")

    wire = on_the_wire(switch_message(ZONE, KEY, DnsRecord("shop.example.com", "A", "127.0.0.20", 60), current))

    assert wire.had_tsig and wire.keyname == dns.name.from_text("doppel-key")
    assert [r.to_text() for r in wire.zone] == ["example.com. IN SOA"]
    (prerequisite,) = wire.prerequisite
    assert (prerequisite.to_text(), prerequisite.ttl) == ("shop.example.com. 0 IN A 127.0.0.10", 0)
    deleted, added = wire.update
    assert (deleted.deleting, deleted.rdtype, len(deleted)) == (dns.rdataclass.ANY, dns.rdatatype.A, 0)
    assert added.to_text() == "shop.example.com. 60 IN A 127.0.0.20"


def test_a_switch_of_a_new_name_requires_that_it_is_still_absent():
    wire = on_the_wire(switch_message(ZONE, KEY, DnsRecord("dr.example.com", "A", "127.0.0.20", 60), None))

    (prerequisite,) = wire.prerequisite
    assert (prerequisite.name.to_text(), prerequisite.deleting, prerequisite.rdtype) == (
        "dr.example.com.", dns.rdataclass.NONE, dns.rdatatype.A)  # RFC 2136 2.4.3: RRset does not exist


def test_the_prerequisite_names_every_value_of_a_round_robin_rrset():
    current = dns.rdataset.from_text("IN", "A", 300, "127.0.0.10", "127.0.0.11")

    wire = on_the_wire(switch_message(ZONE, KEY, DnsRecord("shop.example.com", "A", "127.0.0.20"), current))

    assert sorted(rdata.to_text() for rrset in wire.prerequisite for rdata in rrset) == ["127.0.0.10", "127.0.0.11"]
    assert {(rrset.ttl, rrset.deleting) for rrset in wire.prerequisite} == {(0, None)}  # RFC 2136 2.4.2


def test_an_update_signed_with_another_secret_does_not_verify():
    other = make_key("doppel-key", "b3RoZXItc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5", "hmac-sha256")
    update = switch_message(ZONE, other, DnsRecord("shop.example.com", "A", "127.0.0.20"), None)

    with pytest.raises(dns.tsig.BadSignature):
        on_the_wire(update)


def test_a_delete_names_the_absolute_name_and_checks_existence_only_when_asked():
    lenient = on_the_wire(delete_message(ZONE, KEY, "note.example.com", "TXT", must_exist=False))
    strict = on_the_wire(delete_message(ZONE, KEY, "note.example.com", "TXT", must_exist=True))

    assert lenient.prerequisite == [] and lenient.update[0].name.to_text() == "note.example.com."
    assert strict.prerequisite[0].deleting == dns.rdataclass.ANY  # RFC 2136 2.4.1: RRset exists


@pytest.mark.parametrize("record, text", [
    (DnsRecord("a.example.com", "A", "192.0.2.1"), "192.0.2.1"),
    (DnsRecord("a.example.com", "AAAA", "2001:db8::1"), "2001:db8::1"),
    (DnsRecord("a.example.com", "CNAME", "shop.example.com"), "shop.example.com."),
    (DnsRecord("a.example.com", "TXT", 'say "hi"'), '"say \\"hi\\""'),
])
def test_values_become_rdata_and_come_back_unchanged(record, text):
    rdata = rdata_of(record)

    assert rdata.to_text() == text
    assert value_of(rdata) == record.value


def test_a_txt_value_longer_than_one_dns_string_is_split_and_joined_back():
    value = "v=" + "x" * 600

    rdata = rdata_of(DnsRecord("a.example.com", "TXT", value))

    assert [len(s) for s in rdata.strings] == [255, 255, 92]
    assert value_of(rdata) == value


def answer(rcode=dns.rcode.NOERROR, authoritative=True, *rrsets):
    query = dns.message.make_query("shop.example.com", "A")
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if authoritative:
        response.flags |= dns.flags.AA
    response.answer.extend(rrsets)
    return dns.message.from_wire(response.to_wire())


def test_an_authoritative_answer_gives_the_record_with_its_ttl():
    rrset = dns.rrset.from_text("shop.example.com.", 60, "IN", "A", "127.0.0.20")

    rdataset = rdataset_from_answer(answer(dns.rcode.NOERROR, True, rrset), "shop.example.com", "A", "ns:53")

    assert record_from_rdataset("shop.example.com", "A", rdataset) == DnsRecord("shop.example.com", "A",
                                                                                "127.0.0.20", 60)


def test_nxdomain_and_no_data_are_no_record():
    cname = dns.rrset.from_text("shop.example.com.", 60, "IN", "CNAME", "www.example.com.")

    assert rdataset_from_answer(answer(dns.rcode.NXDOMAIN), "shop.example.com", "A", "ns:53") is None
    assert rdataset_from_answer(answer(dns.rcode.NOERROR, True, cname), "shop.example.com", "A", "ns:53") is None


def test_an_answer_from_a_server_that_is_not_the_authority_is_refused():
    with pytest.raises(DnsError, match="not authoritative") as error:
        rdataset_from_answer(answer(dns.rcode.NOERROR, False), "shop.example.com", "A", "ns:53")
    assert error.value.permanent


def test_a_refused_query_is_permanent_and_a_servfail_is_not():
    with pytest.raises(DnsError, match="REFUSED.*allow-query") as refused:
        rdataset_from_answer(answer(dns.rcode.REFUSED), "shop.example.com", "A", "ns:53")
    with pytest.raises(DnsError) as failed:
        rdataset_from_answer(answer(dns.rcode.SERVFAIL), "shop.example.com", "A", "ns:53")

    assert refused.value.permanent and not failed.value.permanent


def test_a_refused_update_says_which_key_and_zone_to_check():
    message, permanent = update_refusal(dns.rcode.NOTAUTH, "shop.example.com", "127.0.0.1:5353", "doppel-key", ZONE)

    assert message.startswith("DNS server 127.0.0.1:5353 refused the update for shop.example.com: NOTAUTH")
    assert "doppel-key" in message and "zone example.com" in message and permanent
    assert update_refusal(dns.rcode.SERVFAIL, "a.example.com", "ns", "k", ZONE)[1] is False


def test_a_secret_that_is_not_base64_is_refused_without_showing_it():
    with pytest.raises(DnsError, match=r"\$DOPPEL_TSIG_SECRET is not a base64 TSIG secret") as error:
        make_key("doppel-key", "not base64 at all!", "hmac-sha256", "$DOPPEL_TSIG_SECRET")
    assert "not base64 at all" not in str(error.value)


def test_a_record_outside_the_zone_or_of_an_unknown_type_is_refused_before_any_network():
    provider = Rfc2136Provider("192.0.2.53", "example.com", "doppel-key", SECRET, port=1, timeout=0.1)

    with pytest.raises(DnsError, match="not in zone example.com"):
        provider.switch(DnsRecord("shop.example.org", "A", "127.0.0.20"))
    with pytest.raises(DnsError, match="not one of A, AAAA, CNAME, TXT"):
        provider.switch(DnsRecord("shop.example.com", "MX", "10 mail.example.com"))
    with pytest.raises(DnsError, match="not an IPv4 address"):
        provider.switch(DnsRecord("shop.example.com", "A", "2001:db8::1"))
