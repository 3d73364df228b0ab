"""DNS switches against a real BIND 9 on 127.0.0.1:5353 (tests/services/bind.sh), checked with the real dig.

Each test starts from the zone as bind.sh serves it (shop.example.com A 127.0.0.10,
TTL 300), put back with nsupdate — BIND's own client, not the code under test.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clouds.dns import DnsConflict, DnsError, make_dns_provider
from clouds.dns.rfc2136 import Rfc2136Provider
from core.cloud import DnsRecord, ResourceMissing

pytestmark = pytest.mark.dns

ROOT = Path(__file__).resolve().parents[2]
SERVER, PORT, ZONE, KEY = "127.0.0.1", 5353, "example.com", "doppel-key"
SHOP = "shop.example.com"
WRONG_SECRET = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1zZXJ2ZXJzLWtleS0xMjM0NTY3ODkw"  # base64, not the server's


@pytest.fixture(scope="session")
def bind_server() -> dict[str, str]:
    """bind.sh's paths (the key file for nsupdate, the secret file for Doppel); it reuses a running named."""
    done = subprocess.run(["bash", str(ROOT / "tests/services/bind.sh")], check=True, capture_output=True, text=True)
    paths = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(("secret_file=",
                                                                                              "key_file=")))
    return paths


@pytest.fixture
def provider(bind_server, monkeypatch) -> Rfc2136Provider:
    """A provider built as Doppel builds it: from config, with the secret in an environment variable."""
    monkeypatch.setenv("DOPPEL_TSIG_SECRET", Path(bind_server["secret_file"]).read_text().strip())
    return make_dns_provider({"type": "rfc2136", "server": SERVER, "port": PORT, "zone": ZONE,
                              "key_name": KEY, "key_secret_env": "DOPPEL_TSIG_SECRET"})


SCRATCH_NAMES = ("dr.example.com", "note.example.com", "alias.example.com")


@pytest.fixture(autouse=True)
def shop_at_first_address(bind_server):
    """The zone as bind.sh first serves it, whatever an earlier (perhaps aborted) run left behind."""
    nsupdate(bind_server, *(f"update delete {name}" for name in SCRATCH_NAMES),
             f"update delete {SHOP} A", f"update add {SHOP} 300 A 127.0.0.10")
    assert dig(SHOP) == ["127.0.0.10"]


def nsupdate(bind_server: dict, *commands: str) -> None:
    """Change the zone with BIND's own client, as a rival (or a person) would."""
    script = "\n".join([f"server {SERVER} {PORT}", f"zone {ZONE}", *commands, "send", ""])
    subprocess.run(["nsupdate", "-k", bind_server["key_file"]], input=script, text=True, check=True, timeout=30)


def dig(name: str, type: str = "A", *options: str) -> list[str]:
    out = subprocess.run(["dig", f"@{SERVER}", "-p", str(PORT), name, type, "+short", "+norecurse", *options],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()


def dig_ttl(name: str) -> int:
    answer = subprocess.run(["dig", f"@{SERVER}", "-p", str(PORT), name, "A", "+noall", "+answer"],
                            capture_output=True, text=True, check=True, timeout=30).stdout.split()
    return int(answer[1])


def soa_serial() -> int:
    return int(dig(ZONE, "SOA")[2])


def test_switch_points_the_name_at_the_new_address_and_returns_the_old_record(provider):
    previous = provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))

    assert previous == DnsRecord(SHOP, "A", "127.0.0.10", ttl=300)
    assert dig(SHOP) == ["127.0.0.20"]
    assert dig_ttl(SHOP) == 60
    assert provider.get(SHOP) == DnsRecord(SHOP, "A", "127.0.0.20", ttl=60)


def test_switch_with_a_wrong_tsig_secret_is_refused_and_changes_nothing(bind_server):
    impostor = make_dns_provider({"type": "rfc2136", "server": SERVER, "port": PORT, "zone": ZONE,
                                  "key_name": KEY, "key_secret_env": "WRONG"}, environ={"WRONG": WRONG_SECRET})

    with pytest.raises(DnsError) as refused:
        impostor.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))

    assert "BADSIG" in str(refused.value) and "$WRONG" in str(refused.value) and KEY in str(refused.value)
    assert WRONG_SECRET not in str(refused.value)
    assert refused.value.permanent
    assert dig(SHOP) == ["127.0.0.10"]


def test_switching_twice_changes_the_zone_once(provider):
    provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))
    serial = soa_serial()

    again = provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))

    assert again == DnsRecord(SHOP, "A", "127.0.0.20", ttl=60)
    assert soa_serial() == serial  # no second update reached the zone
    assert dig(SHOP) == ["127.0.0.20"]


def test_a_new_ttl_alone_is_a_change(provider):
    previous = provider.switch(DnsRecord(SHOP, "A", "127.0.0.10", ttl=30))

    assert previous.ttl == 300
    assert dig_ttl(SHOP) == 30


class RivalBetweenReadAndUpdate(Rfc2136Provider):
    """A real race: after this provider reads the record, a rival changes it with nsupdate."""

    def __init__(self, *args, rival, **kwargs):
        super().__init__(*args, **kwargs)
        self.rival = rival

    def _read(self, name, type):
        current = super()._read(name, type)
        if self.rival:
            self.rival, rival = None, self.rival
            rival()
        return current


def racing_provider(bind_server, rival) -> RivalBetweenReadAndUpdate:
    secret = Path(bind_server["secret_file"]).read_text().strip()
    return RivalBetweenReadAndUpdate(SERVER, ZONE, KEY, secret, port=PORT, rival=rival)


def test_a_rival_switch_between_read_and_update_is_not_overwritten(bind_server):
    racer = racing_provider(bind_server, lambda: nsupdate(bind_server, f"update delete {SHOP} A",
                                                          f"update add {SHOP} 300 A 127.0.0.30"))

    with pytest.raises(DnsConflict) as conflict:
        racer.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))

    assert "127.0.0.30" in str(conflict.value) and not conflict.value.permanent
    assert dig(SHOP) == ["127.0.0.30"]


def test_a_rival_making_the_same_switch_counts_as_done(bind_server):
    racer = racing_provider(bind_server, lambda: nsupdate(bind_server, f"update delete {SHOP} A",
                                                          f"update add {SHOP} 60 A 127.0.0.20"))

    previous = racer.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))

    assert previous == DnsRecord(SHOP, "A", "127.0.0.10", ttl=300)
    assert dig(SHOP) == ["127.0.0.20"]


def test_switch_replaces_every_value_of_a_round_robin_name(provider, bind_server):
    nsupdate(bind_server, f"update add {SHOP} 300 A 127.0.0.11")
    assert sorted(dig(SHOP)) == ["127.0.0.10", "127.0.0.11"]

    previous = provider.switch(DnsRecord(SHOP, "A", "127.0.0.20", ttl=60))

    assert previous.value == "127.0.0.10"
    assert dig(SHOP) == ["127.0.0.20"]


def test_new_name_cname_and_txt_round_trip_then_delete(provider):
    assert provider.switch(DnsRecord("dr.example.com", "CNAME", SHOP, ttl=120)) is None
    assert provider.switch(DnsRecord("note.example.com", "TXT", 'failed over "by Doppel"', ttl=120)) is None

    assert dig("dr.example.com", "CNAME") == [SHOP + "."]
    assert provider.get("note.example.com", "TXT").value == 'failed over "by Doppel"'

    provider.delete("dr.example.com", "CNAME")
    provider.delete("note.example.com", "TXT")
    provider.delete("note.example.com", "TXT")  # again: nothing to do

    assert dig("dr.example.com", "CNAME") == [] and provider.get("note.example.com", "TXT") is None
    with pytest.raises(ResourceMissing):
        provider.delete("note.example.com", "TXT", ignore_missing=False)


def test_a_name_outside_the_zone_is_refused_before_sending(provider):
    with pytest.raises(DnsError, match="not in zone example.com"):
        provider.switch(DnsRecord("shop.example.org", "A", "127.0.0.20"))


def test_a_server_that_is_not_there_is_a_retryable_error():
    silent = Rfc2136Provider(SERVER, ZONE, KEY, WRONG_SECRET, port=5399, timeout=0.5)

    with pytest.raises(DnsError) as unreachable:
        silent.get(SHOP)

    assert "127.0.0.1:5399" in str(unreachable.value) and not unreachable.value.permanent


@pytest.fixture(autouse=True, scope="module")
def leave_shop_as_bind_sh_serves_it(bind_server):
    """Whoever uses the same named next (a later run, a person) finds the zone as bind.sh describes it."""
    yield
    nsupdate(bind_server, f"update delete {SHOP} A", f"update add {SHOP} 300 A 127.0.0.10")


def test_an_a_record_that_bind_drops_beside_a_cname_is_reported_not_taken_for_done(provider):
    provider.switch(DnsRecord("alias.example.com", "CNAME", SHOP, ttl=60))
    try:
        with pytest.raises(DnsError, match="accepted the switch of alias.example.com .* is there a CNAME"):
            provider.switch(DnsRecord("alias.example.com", "A", "127.0.0.40", ttl=60))
        assert dig("alias.example.com", "CNAME") == [SHOP + "."]
    finally:
        provider.delete("alias.example.com", "CNAME")
