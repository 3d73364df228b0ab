"""The schema of `doppel.yaml`'s `dr:` section: one disaster-recovery policy per production.

```yaml
dr:
  shop:                                  # a production named under productions:
    target: {env: shop-dr}               # where the DR copy lives (local: an environment restored into;
                                         # driver: openstack + cloud, region, template, parameters, container;
                                         # driver: aws + region, template, parameters, bucket, profile)
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


TARGET_DRIVERS = ("local", "openstack", "aws")
CLOUD_KEYS = ("cloud", "region", "template", "parameters", "container", "bucket", "profile")  # only a cloud target's
DRIVER_KEYS = {"openstack": ("cloud", "container"), "aws": ("bucket", "profile")}  # only that driver's


class DrTarget(_Strict):
    """Where the DR copy lives. `local`: an environment restored into on this host. A cloud driver: a stack made
    only at failover, in the DR side, from production's template (or `template`) with `parameters` overriding
    production's: `openstack` in the DR cloud/region/project, the backups copied into `container` there; `aws`
    in the DR `region` (with `profile`, or boto3's chain), the backups copied into the S3 `bucket` there."""
    driver = fields.String(load_default="local", validate=validate.OneOf(TARGET_DRIVERS))
    env = fields.String(required=True, validate=ENV_NAME)  # the DR copy: an environment (its stack doppel-<env>)
    cloud = fields.String(validate=validate.Length(min=1))  # clouds.yaml entry of the DR side; default production's
    region = fields.String(validate=validate.Length(min=1))  # default: production's region
    template = fields.String(validate=validate.Length(min=1))  # default: production's template
    parameters = fields.Dict(keys=fields.String(), load_default=dict)  # over production's parameters, in DR
    container = fields.String(validate=validate.Length(min=1, max=200))  # default doppel-dr-backups
    bucket = fields.String(validate=validate.Regexp(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", error=(
        "an S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens")))  # default doppel-dr-backups
    profile = fields.String(validate=validate.Length(min=1))  # a profile of ~/.aws/config; never keys

    @validates_schema
    def _cloud_keys(self, data, **kwargs):
        driver = data.get("driver", "local")
        if driver == "local":
            given = [key for key in CLOUD_KEYS if data.get(key)]
            if given:
                raise ValidationError({given[0]: [f"only a cloud target (driver: openstack or aws) has {given[0]}"]})
        for other, keys in DRIVER_KEYS.items():
            given = [key for key in keys if other != driver and data.get(key)]
            if given and driver != "local":
                raise ValidationError({given[0]: [f"only a target with driver: {other} has {given[0]}"]})


class DrRecord(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(load_default="A", validate=validate.OneOf(["A", "AAAA", "CNAME", "TXT"]))
    value = fields.String(required=True, validate=validate.Length(min=1))  # the DR copy's address; {outputs.X}
    # of a cloud target: the DR stack's output X, read when the stack is made
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
    return errors + target_driver_errors(dr, productions)


def target_driver_errors(dr: dict, productions: dict) -> list[str]:
    """Errors for cloud targets (driver: openstack or aws) of productions that are not on that cloud."""
    errors = []
    for name, policy in dr.items():
        kind, entry = policy["target"].get("driver", "local"), productions.get(name)
        if kind != "local" and isinstance(entry, dict) and entry.get("driver", "local") != kind:
            errors.append(f"dr.{name}.target.driver: {kind} needs a production on {kind}, and {name} is "
                          f"{entry.get('driver', 'local')}; use driver: local")
    return errors
