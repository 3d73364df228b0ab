"""Building a DNS provider from doppel.yaml: what is accepted, and what each refusal says."""
from __future__ import annotations

import pytest

from clouds.dns import DnsConfigError, make_dns_provider
from clouds.dns.rfc2136 import Rfc2136Provider
from clouds.local.dns import LocalDnsProvider

SECRET = "c2VjcmV0LW9mLXRoZS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm"
RFC2136 = {"type": "rfc2136", "server": "127.0.0.1", "port": 5353, "zone": "example.com",
           "key_name": "doppel-key", "key_secret_env": "DOPPEL_TSIG_SECRET", "algorithm": "hmac-sha256"}


def test_an_rfc2136_provider_takes_its_secret_from_the_named_variable():
    provider = make_dns_provider(RFC2136, environ={"DOPPEL_TSIG_SECRET": SECRET})

    assert isinstance(provider, Rfc2136Provider)
    assert (provider.where, provider.zone.to_text(True), provider.key_name) == ("127.0.0.1:5353", "example.com",
                                                                                "doppel-key")
    assert provider.key.secret == __import__("base64").b64decode(SECRET)


def test_port_algorithm_and_timeout_have_defaults():
    spec = {k: v for k, v in RFC2136.items() if k not in ("port", "algorithm")}

    provider = make_dns_provider(spec, environ={"DOPPEL_TSIG_SECRET": SECRET})

    assert (provider.port, provider.algorithm, provider.timeout) == (53, "hmac-sha256", 5.0)


def test_an_unset_secret_variable_is_named_in_the_error():
    with pytest.raises(DnsConfigError, match="DOPPEL_TSIG_SECRET .*is not set.*doppel-key"):
        make_dns_provider(RFC2136, environ={})


def test_a_secret_written_in_the_config_is_refused_and_not_echoed():
    with pytest.raises(DnsConfigError, match="key_secret_env") as error:
        make_dns_provider({**RFC2136, "key_secret": SECRET}, environ={"DOPPEL_TSIG_SECRET": SECRET})
    assert SECRET not in str(error.value)


def test_a_secret_variable_that_holds_no_base64_is_refused_naming_the_variable():
    with pytest.raises(DnsConfigError, match=r"\$DOPPEL_TSIG_SECRET is not a base64"):
        make_dns_provider(RFC2136, environ={"DOPPEL_TSIG_SECRET": "hunter2!"})


@pytest.mark.parametrize("change, field", [
    ({"algorithm": "hmac-sha3"}, "algorithm"),
    ({"port": 70000}, "port"),
    ({"zone": "exa mple.com"}, "zone"),
    ({"key_secret_env": "not a variable"}, "key_secret_env"),
    ({"servr": "typo"}, "servr"),
    ({"server": None}, "server"),
])
def test_a_wrong_field_is_named(change, field):
    with pytest.raises(DnsConfigError, match=field):
        make_dns_provider({**RFC2136, **change}, environ={"DOPPEL_TSIG_SECRET": SECRET})


def test_an_unknown_type_lists_the_known_ones():
    with pytest.raises(DnsConfigError, match="rfc2136, designate, route53, local"):
        make_dns_provider({"type": "gandi", "zone": "example.com"})


def test_designate_needs_a_cloud_and_a_zone():
    with pytest.raises(DnsConfigError, match="cloud") as error:
        make_dns_provider({"type": "designate", "zone": "example.com"})
    assert "zone" not in str(error.value).split("configuration:")[1]


def test_a_local_provider_uses_the_local_driver_state_directory(tmp_path):
    provider = make_dns_provider({"type": "local", "state_dir": str(tmp_path)})

    assert isinstance(provider, LocalDnsProvider) and provider.state_dir == tmp_path.resolve()
