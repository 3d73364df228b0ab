"""What a timed job is, in Doppel's words: an id, the event it emits, and when.

Two kinds: `config` jobs come from `schedules:` in doppel.yaml; `expiry` jobs are an
environment's TTL, asked for by a function. The spec travels inside the APScheduler
job (as a dict) and its fingerprint tells a changed schedule from an unchanged one,
so a restart keeps an unchanged job's next run time (and its missed fires).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from schemas import triggers

CONFIG, EXPIRY = "config", "expiry"
EXPIRY_PREFIX = "expiry:"


@dataclass(frozen=True)
class JobSpec:
    id: str
    type: str
    data: dict = field(default_factory=dict)
    tags: tuple = ()
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    at: float | None = None  # a date job: epoch seconds
    misfire_grace: float | None = None  # None: never too late to fire (expiries)
    kind: str = CONFIG

    @classmethod
    def from_config(cls, entry: dict) -> "JobSpec":
        """A job from one validated `schedules:` entry."""
        return cls(id=entry["id"], type=entry["type"], data=dict(entry.get("data") or {}),
                   tags=tuple(entry.get("tags") or ()), cron=entry.get("cron"), every=entry.get("every"),
                   timezone=entry.get("timezone", "UTC"), misfire_grace=entry.get("misfire_grace"))

    @classmethod
    def expiry(cls, env: str, at: float) -> "JobSpec":
        """An environment's TTL: env.expired at `at`, however late (an environment must not live on)."""
        return cls(id=expiry_job_id(env), type="env.expired", data={"env": env, "reason": "ttl"},
                   tags=("expiry",), at=at, kind=EXPIRY)

    @classmethod
    def from_dict(cls, raw: dict) -> "JobSpec":
        return cls(**{**raw, "tags": tuple(raw.get("tags") or ())})

    def to_dict(self) -> dict:
        return {**asdict(self), "tags": list(self.tags)}

    @property
    def env(self) -> str | None:
        return self.data.get("env") if self.kind == EXPIRY else None

    def trigger(self):
        if self.cron is not None:
            return triggers.cron_trigger(self.cron, self.timezone)
        if self.every is not None:
            return triggers.interval_trigger(self.every)
        if self.at is not None:
            return triggers.date_trigger(datetime.fromtimestamp(self.at, timezone.utc))
        raise ValueError(f"job {self.id!r} has no cron, every or date")

    def fingerprint(self) -> str:
        """Changes when anything that decides what or when it fires changes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone})"
        if self.every is not None:
            return f"every {_duration(self.every)}"
        return "at " + datetime.fromtimestamp(self.at, timezone.utc).isoformat().replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def expiry_job_id(env: str) -> str:
    return f"{EXPIRY_PREFIX}{env}"


def config_jobs(schedules: list[dict]) -> list[JobSpec]:
    return [JobSpec.from_config(entry) for entry in schedules]
