"""The schema of `doppel.yaml`. Secrets are never here: they come from environment variables."""
from __future__ import annotations

import math

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.backups import BackupsSection
from schemas.dr import DrSection, target_driver_errors
from schemas.events import TTL_CEILING
from schemas.fields import Duration
from schemas.gateway import GatewaySection, default_gateway
from schemas.logs import LogsSection
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
    stuck_after = Duration(load_default=7200.0)  # an environment half-made this long, with no work on it, is failed


_TTL_RANGE = validate.Range(max=TTL_CEILING, error="must be at most ten years (3650d)")


class TtlLimits(Strict):
    """One production's TTL bounds (environments.productions.<name>), over the section's own."""
    max_ttl = Duration(validate=_TTL_RANGE)
    default_ttl = Duration(validate=_TTL_RANGE)


class EnvironmentsSection(Strict):
    # The longest TTL a request may ask for; longer ones are refused with the reason (env.failed).
    max_ttl = Duration(load_default=30 * 86400.0, validate=_TTL_RANGE)
    # The TTL of a request that asks for none (unset: such an environment lives until deleted).
    default_ttl = Duration(load_default=None, allow_none=True, validate=_TTL_RANGE)
    productions = fields.Dict(keys=fields.String(), values=fields.Nested(TtlLimits), load_default=dict)
    # How long before its end an environment's owner is warned (once, in the notify: channels); 0 turns it off.
    warn_before = Duration(load_default=86400.0, validate=validate.Range(min=0, max=TTL_CEILING))

    @validates_schema
    def _default_within_max(self, data, **kwargs):
        for where, limits in [("environments", data), *((f"environments.productions.{name}", limits)
                                                        for name, limits in data.get("productions", {}).items())]:
            default = limits.get("default_ttl")
            most = limits.get("max_ttl", data.get("max_ttl"))
            if default and most and default > most:
                raise ValidationError(f"{where}: default_ttl {describe_seconds(default)} is longer than max_ttl "
                                      f"{describe_seconds(most)}; lower it or raise max_ttl", "default_ttl")


def ttl_limits(section: dict, production: str) -> tuple[float | None, float]:
    """(default TTL, maximum TTL) for an environment of `production`: its own limits, else the section's."""
    own = section.get("productions", {}).get(production, {})
    return own.get("default_ttl", section.get("default_ttl")), own.get("max_ttl", section["max_ttl"])


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


class Webhook(Strict):
    url_env = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be the name of an environment variable (e.g. DOPPEL_SLACK_WEBHOOK)"),
        error_messages={"required": "required: the environment variable holding the webhook's URL "
                                    "(url_env: DOPPEL_SLACK_WEBHOOK); the URL itself is a credential, never "
                                    "written here"})


class NotifySection(Schema):
    """`notify:`: webhooks are checked (their URLs are credentials: only the variable holding one is written);
    other keys pass through to the inline-secret check below."""
    class Meta:
        unknown = INCLUDE

    webhooks = fields.List(fields.Nested(Webhook), load_default=list)


class SentrySection(Strict):
    environment = fields.String(load_default="production")
    release = fields.String()


_PORT = validate.Range(min=0, max=65535)


class MetricsPorts(Strict):
    """Each role's Prometheus port (`doppel run`, all roles in one process, uses the worker's); unset or 0: none."""
    worker = fields.Integer(load_default=None, allow_none=True, validate=_PORT)
    scheduler = fields.Integer(load_default=None, allow_none=True, validate=_PORT)
    gateway = fields.Integer(load_default=None, allow_none=True, validate=_PORT)
    listener = fields.Integer(load_default=None, allow_none=True, validate=_PORT)


class RpoObjective(Strict):
    rpo_objective = Duration(required=True, validate=validate.Range(min=1))


class MetricsSection(Strict):
    """`metrics:`: where each role serves Prometheus' text format, and the objectives the alert rules read."""
    host = fields.String(load_default="127.0.0.1")
    ports = fields.Nested(MetricsPorts, load_default=lambda: MetricsPorts().load({}))
    # The most data a production may lose: the newest backup older than this raises DoppelRpoOverObjective.
    rpo_objective = Duration(load_default=26 * 3600.0, validate=validate.Range(min=1))
    productions = fields.Dict(keys=fields.String(), values=fields.Nested(RpoObjective), load_default=dict)


class ConfigSchema(Strict):
    state_dir = fields.String(load_default=".doppel")
    source = fields.String(load_default="doppel")
    bus = fields.Nested(BusSection, load_default=lambda: BusSection().load({}))
    environments = fields.Nested(EnvironmentsSection, load_default=lambda: EnvironmentsSection().load({}))
    sentry = fields.Nested(SentrySection, load_default=lambda: SentrySection().load({}))
    productions = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)
    backups = fields.Nested(BackupsSection, load_default=lambda: BackupsSection().load({}))
    logs = fields.Nested(LogsSection, load_default=lambda: LogsSection().load({}))
    schedules = Schedules()
    dr = DrSection()
    gateway = fields.Nested(GatewaySection, load_default=default_gateway)
    notify = fields.Nested(NotifySection, load_default=dict)
    metrics = fields.Nested(MetricsSection, load_default=lambda: MetricsSection().load({}))

    @validates_schema
    def _dr_targets_on_their_productions_cloud(self, data, **kwargs):
        errors = target_driver_errors(data.get("dr", {}), data.get("productions", {}))
        if errors:
            raise ValidationError({"dr": errors})

    @validates_schema
    def _no_inline_secrets(self, data, **kwargs):
        found = list(_secret_looking_keys(data))
        if found:
            raise ValidationError(
                {key: ["looks like a secret; put it in an environment variable and name the variable "
                       "here (e.g. password_env: DOPPEL_DB_PASSWORD)"] for key in found})
        literal = list(_literal_secret_rewrites(data.get("productions", {})))
        if literal:
            raise ValidationError(
                {where: [f"{key} looks like a secret and its value is written out; a copy gets a fresh one: "
                         "value: \"{secrets.NAME}\" with NAME under clone.secrets"] for where, key in literal})


def _literal_secret_rewrites(productions):
    """(where, key) of each rewrite rule that writes a literal value into a key named like a secret."""
    for name, production in (productions or {}).items():
        rules = ((production or {}).get("clone") or {}).get("rewrite") or [] if isinstance(production, dict) else []
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                continue
            key, value = str(rule.get("key", "")), rule.get("value")
            if (any(word in key.lower() for word in _SECRET_WORDS) and isinstance(value, str) and value
                    and "{" not in value):
                yield f"productions.{name}.clone.rewrite.{index}.value", key


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
