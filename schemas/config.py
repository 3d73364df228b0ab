"""The schema of `doppel.yaml`. Secrets are never here: they come from environment variables."""
from __future__ import annotations

import math

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.backups import BackupsSection
from schemas.dr import DrSection
from schemas.events import TTL_CEILING
from schemas.fields import Duration
from schemas.gateway import GatewaySection, default_gateway
from schemas.schedules import Schedules


class Strict(Schema):
    class Meta:
        unknown = RAISE


class RetrySection(Strict):
    attempts = fields.Integer(load_default=5, validate=validate.Range(min=1, max=50))
    first_delay = Duration(load_default=1.0)
    factor = fields.Float(load_default=2.0, validate=validate.Range(min=1))
    max_delay = Duration(load_default=300.0)


class BusSection(Strict):
    prefetch = fields.Integer(load_default=32, validate=validate.Range(min=1, max=10_000))
    lease = Duration(load_default=30.0)
    retry = fields.Nested(RetrySection, load_default=lambda: RetrySection().load({}))


class EnvironmentsSection(Strict):
    # The longest TTL a request may ask for; longer ones are refused with the reason (env.failed).
    max_ttl = Duration(load_default=30 * 86400.0, validate=validate.Range(
        max=TTL_CEILING, error="must be at most ten years (3650d)"))
    # How long before its end an environment's owner is warned (once, in the notify: channels); 0 turns it off.
    warn_before = Duration(load_default=86400.0, validate=validate.Range(min=0, max=TTL_CEILING))


def ttl_refusal(ttl_seconds: float | None, max_ttl: float) -> str | None:
    """Why a request's TTL is refused under `environments.max_ttl` (None when it is allowed)."""
    if ttl_seconds is None or ttl_seconds <= max_ttl:
        return None
    asked = f"a TTL of {describe_seconds(ttl_seconds)}" if math.isfinite(ttl_seconds) else "an endless TTL"
    return (f"{asked} is longer than this Doppel allows ({describe_seconds(max_ttl)}, environments.max_ttl in "
            "doppel.yaml); ask for less, or have an operator raise the limit")


def describe_seconds(seconds: float) -> str:
    """A duration as a person writes it: '30d', '8h', '90s' (the largest unit that divides it)."""
    if seconds >= 1e12:
        return f"{seconds:.3g} s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class SentrySection(Strict):
    environment = fields.String(load_default="production")
    release = fields.String()


class ConfigSchema(Strict):
    state_dir = fields.String(load_default=".doppel")
    source = fields.String(load_default="doppel")
    bus = fields.Nested(BusSection, load_default=lambda: BusSection().load({}))
    environments = fields.Nested(EnvironmentsSection, load_default=lambda: EnvironmentsSection().load({}))
    sentry = fields.Nested(SentrySection, load_default=lambda: SentrySection().load({}))
    productions = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)
    backups = fields.Nested(BackupsSection, load_default=lambda: BackupsSection().load({}))
    schedules = Schedules()
    dr = DrSection()
    gateway = fields.Nested(GatewaySection, load_default=default_gateway)
    notify = fields.Dict(load_default=dict)

    @validates_schema
    def _no_inline_secrets(self, data, **kwargs):
        found = list(_secret_looking_keys(data))
        if found:
            raise ValidationError(
                {key: ["looks like a secret; put it in an environment variable and name the variable "
                       "here (e.g. password_env: DOPPEL_DB_PASSWORD)"] for key in found})


_SECRET_WORDS = ("password", "secret", "token", "api_key", "private_key", "dsn")


def _secret_looking_keys(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            lowered = str(key).lower()
            if (any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith("_env")
                    and isinstance(value, str) and value and "{" not in value):
                yield here
            yield from _secret_looking_keys(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _secret_looking_keys(value, f"{path}[{index}]")
