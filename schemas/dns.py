"""The schema of a DNS provider's configuration (the DR policy's `dns:` entry, and wherever one is named).

```yaml
dns: {type: rfc2136, server: 10.0.0.53, port: 53, zone: example.com,
      key_name: doppel-key, key_secret_env: DOPPEL_TSIG_SECRET, algorithm: hmac-sha256}
dns: {type: designate, cloud: dr-region, zone: example.com}      # an entry of clouds.yaml
dns: {type: route53, zone: example.com}                           # boto3's credential chain (or profile:)
dns: {type: local, state_dir: /var/lib/doppel/local}              # the local driver's records file
```

Secrets never appear here: `key_secret_env` names the environment variable that
holds the TSIG secret. A secret written inline is refused with a message that says
what to write instead.
"""
from __future__ import annotations

from typing import Any, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")
_INLINE_SECRETS = ("key_secret", "secret", "key", "password", "token", "tsig_secret")
_ENV_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be the name of an environment variable")
_ZONE = validate.Regexp(r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$",
                        error="must be a DNS zone name, e.g. example.com")
_KEY_NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$",
                            error="must be a TSIG key name as in the server's config, e.g. doppel-key")


class _DnsSpec(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True)

    @pre_load
    def _refuse_inline_secrets(self, data, **kwargs):
        found = [name for name in _INLINE_SECRETS if name in data]
        if found:
            raise ValidationError({name: ["secrets are never written in the configuration: put it in an "
                                          "environment variable and name the variable in key_secret_env"]
                                   for name in found})
        return data


class Rfc2136Spec(_DnsSpec):
    type = fields.String(required=True, validate=validate.Equal("rfc2136"))
    server = fields.String(required=True, validate=validate.Length(min=1))  # the zone's primary
    port = fields.Integer(load_default=53, validate=validate.Range(min=1, max=65535))
    zone = fields.String(required=True, validate=_ZONE)
    key_name = fields.String(required=True, validate=_KEY_NAME)
    key_secret_env = fields.String(required=True, validate=_ENV_NAME)
    algorithm = fields.String(load_default="hmac-sha256", validate=validate.OneOf(ALGORITHMS))
    timeout = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))


class DesignateSpec(_DnsSpec):
    type = fields.String(required=True, validate=validate.Equal("designate"))
    cloud = fields.String(required=True, validate=validate.Length(min=1))  # an entry of clouds.yaml
    zone = fields.String(required=True, validate=_ZONE)
    region_name = fields.String()


class Route53Spec(_DnsSpec):
    type = fields.String(required=True, validate=validate.Equal("route53"))
    zone = fields.String(required=True, validate=_ZONE)      # the public hosted zone's name
    zone_id = fields.String(validate=validate.Regexp(r"^[A-Z0-9]{1,32}$", error="must be a hosted zone id, e.g. "
                                                                                 "Z0123456789ABCDEFGHIJ"))
    profile = fields.String()  # a profile of ~/.aws/config; otherwise boto3's chain


class LocalDnsSpec(_DnsSpec):
    type = fields.String(required=True, validate=validate.Equal("local"))
    state_dir = fields.String(required=True, validate=validate.Length(min=1))


DNS_SPECS: dict[str, type[_DnsSpec]] = {"rfc2136": Rfc2136Spec, "designate": DesignateSpec, "route53": Route53Spec,
                                        "local": LocalDnsSpec}


def load_dns_spec(spec: Mapping[str, Any]) -> dict:
    """Validate a DNS provider's configuration; the error names the field and says what to write."""
    if not isinstance(spec, Mapping):
        raise ValidationError({"_schema": ["a DNS provider is a mapping with a type: rfc2136, designate, route53 or "
                                           "local"]})
    kind = spec.get("type")
    if kind not in DNS_SPECS:
        raise ValidationError({"type": [f"{kind!r} is not a DNS provider type; use one of rfc2136, designate, "
                                        "route53, local"]})
    return DNS_SPECS[kind]().load(dict(spec))
