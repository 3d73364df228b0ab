"""DNS providers behind one interface: RFC 2136, OpenStack Designate, Route 53, the local driver's file.

`make_dns_provider(spec)` builds one from its configuration (schemas/dns.py). The
TSIG secret comes only from the environment variable the configuration names
(`key_secret_env`), read here, once, when the provider is made.
"""
from __future__ import annotations

import os
from typing import Mapping

from core.dns import DnsConflict, DnsError, DnsProvider

__all__ = ["DnsConfigError", "DnsConflict", "DnsError", "DnsProvider", "make_dns_provider"]


class DnsConfigError(ValueError):
    """The provider's configuration is invalid or names an environment variable that is not set."""


def make_dns_provider(spec: Mapping, *, environ: Mapping[str, str] | None = None) -> DnsProvider:
    """A provider from its configuration, e.g. `{type: rfc2136, server: 127.0.0.1, zone: example.com, ...}`."""
    from marshmallow import ValidationError

    from schemas.dns import load_dns_spec

    try:
        config = load_dns_spec(spec)
    except ValidationError as exc:
        raise DnsConfigError(f"{spec.get('type', '?') if isinstance(spec, Mapping) else '?'} DNS provider "
                             f"configuration: {exc.messages}") from None
    environ = os.environ if environ is None else environ
    builder = {"rfc2136": _rfc2136, "designate": _designate, "route53": _route53, "local": _local}[config.pop("type")]
    return builder(config, environ)


def _rfc2136(config: dict, environ) -> DnsProvider:
    from clouds.dns.rfc2136 import Rfc2136Provider
    variable = config.pop("key_secret_env")
    secret = environ.get(variable)
    if not secret:
        raise DnsConfigError(f"rfc2136 DNS provider for zone {config['zone']}: the environment variable {variable} "
                             f"(named by key_secret_env) is not set; export the TSIG secret of key "
                             f"{config['key_name']} in it before starting Doppel")
    try:
        return Rfc2136Provider(config.pop("server"), config.pop("zone"), config.pop("key_name"), secret,
                               secret_source=f"the secret in ${variable}", **config)
    except DnsError as exc:
        raise DnsConfigError(str(exc)) from None


def _designate(config: dict, environ) -> DnsProvider:
    import openstack

    from clouds.dns.designate import DesignateProvider
    options = {"region_name": config["region_name"]} if config.get("region_name") else {}
    connection = openstack.connect(cloud=config["cloud"], **options)
    return DesignateProvider(connection, config["zone"], cloud=config["cloud"])


def _route53(config: dict, environ) -> DnsProvider:
    from clouds.dns.route53 import Route53Provider
    return Route53Provider(config["zone"], zone_id=config.get("zone_id"), profile=config.get("profile"))


def _local(config: dict, environ) -> DnsProvider:
    from clouds.local.dns import LocalDnsProvider
    return LocalDnsProvider(config["state_dir"])
