"""The schema of `doppel.yaml`'s `dr:` section: one disaster-recovery policy per production.

```yaml
dr:
  shop:                                  # a production named under productions:
    target: {env: shop-dr}               # where the DR copy lives (local: an environment restored into)
    alarms: [shop-http-down, 0b7e...]    # Aodh alarm names or ids that mean "shop is down"
    decision: automatic                  # or confirm: wait for failover.confirmed (doppel dr failover)
    debounce: 10m                        # one failover per window, however the alarm flaps or repeats
    backup: newest_verified              # or newest, verified_only (docs/dr.md, "Which backup")
    dns:
      provider: {type: local, state_dir: /var/lib/doppel/local}   # clouds/dns spec; default: the local records file
      records:
        - {name: shop.example.com, type: A, value: 203.0.113.20, ttl: 60}   # what the name says during a failover
    health:
      url: http://203.0.113.20/health    # optional HTTP probe, after the DNS switch
      expect_status: 200
      timeout: 5s
```

Everything but `target` has a default; a policy without `dns.records` switches no name.
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.dns import load_dns_spec
from schemas.events import ENV_NAME
from schemas.fields import Duration

DECISIONS = ("automatic", "confirm")
BACKUP_CHOICES = ("newest_verified", "newest", "verified_only")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class DrTarget(_Strict):
    driver = fields.String(load_default="local", validate=validate.OneOf(["local"]))
    env = fields.String(required=True, validate=ENV_NAME)  # the DR copy: an environment of that name


class DrRecord(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(load_default="A", validate=validate.OneOf(["A", "AAAA", "CNAME", "TXT"]))
    value = fields.String(required=True, validate=validate.Length(min=1))  # the DR copy's address
    ttl = fields.Integer(load_default=60, validate=validate.Range(min=0, max=2_147_483_647))


class DnsProviderField(fields.Dict):
    """A clouds/dns provider spec, checked by that package's own schema."""

    def _deserialize(self, value, attr, data, **kwargs):
        spec = super()._deserialize(value, attr, data, **kwargs)
        load_dns_spec(spec)  # raises ValidationError naming the field
        return spec


class DrDns(_Strict):
    provider = DnsProviderField(load_default=None, allow_none=True)  # None: the local driver's records file
    records = fields.List(fields.Nested(DrRecord), load_default=list)


class DrHealth(_Strict):
    url = fields.Url(require_tld=False, schemes={"http", "https"})
    expect_status = fields.Integer(load_default=200, validate=validate.Range(min=100, max=599))
    timeout = Duration(load_default=5.0)
    paths = fields.List(fields.String(), load_default=None, allow_none=True)  # default: every component's path


class DrPolicy(_Strict):
    target = fields.Nested(DrTarget, required=True)
    alarms = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    decision = fields.String(load_default="automatic", validate=validate.OneOf(DECISIONS))
    debounce = Duration(load_default=600.0)
    backup = fields.String(load_default="newest_verified", validate=validate.OneOf(BACKUP_CHOICES))
    dns = fields.Nested(DrDns, load_default=lambda: DrDns().load({}))
    health = fields.Nested(DrHealth, load_default=lambda: DrHealth().load({}))

    @validates_schema
    def _names_once(self, data, **kwargs):
        names = [(r["name"].rstrip(".").lower(), r["type"]) for r in data.get("dns", {}).get("records", [])]
        if len(names) != len(set(names)):
            raise ValidationError({"dns": {"records": ["a name and type may appear only once"]}})


def DrSection() -> fields.Dict:
    """`dr:` in doppel.yaml: production name -> its policy."""
    return fields.Dict(keys=fields.String(), values=fields.Nested(DrPolicy), load_default=dict)


def check_productions(dr: dict, productions: dict) -> list[str]:
    """Errors for policies naming a production doppel.yaml does not have, or a DR env that is a production."""
    errors = []
    for name, policy in dr.items():
        if name not in productions:
            errors.append(f"dr.{name}: there is no production {name!r} under productions:; fix the name")
        if policy["target"]["env"] in productions:
            errors.append(f"dr.{name}.target.env: {policy['target']['env']!r} is a production; name a DR copy")
    return errors
