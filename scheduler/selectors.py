"""Which jobs a pause covers: by id, tag, event type and production.

A selector is a dict, e.g. the DR failover's
`{"types": ["sync.due", "backup.due"], "production": "shop"}`, or, from the command
line, one word: `nightly-backup` (a job id), `tag:dr`, `type:sync.due`,
`production:shop`. Every key given must match; within a key, any listed value does.
It matches jobs by what they are, so a job added to the config during a failover is
frozen too.
"""
from __future__ import annotations

import hashlib
import json

from scheduler.jobs import JobSpec

LIST_KEYS = ("jobs", "tags", "types")
KEYS = LIST_KEYS + ("production",)
WORD_PREFIXES = {"tag": "tags", "type": "types", "production": "production", "job": "jobs"}


class SelectorError(ValueError):
    """A selector that names nothing Doppel understands."""


def normalize(selector) -> dict:
    """The canonical dict form of a selector (sorted lists), or SelectorError saying how to write one."""
    if isinstance(selector, str):
        selector = _from_word(selector)
    elif isinstance(selector, (list, tuple)):
        selector = {"jobs": list(selector)}
    if not isinstance(selector, dict):
        raise SelectorError(f"a selector is a dict or a word, not {type(selector).__name__}")
    unknown = sorted(set(selector) - set(KEYS))
    if unknown:
        raise SelectorError(f"unknown selector key(s) {', '.join(unknown)}; use {', '.join(KEYS)}")
    canonical = {}
    for key in LIST_KEYS:
        values = selector.get(key)
        values = [values] if isinstance(values, str) else list(values or [])
        values = sorted({str(v).strip() for v in values if str(v).strip()})
        if values:
            canonical[key] = values
    if selector.get("production"):
        canonical["production"] = str(selector["production"])
    if not canonical:
        raise SelectorError("an empty selector would cover every job; name jobs, tags, types or a production")
    return canonical


def _from_word(word: str) -> dict:
    word = word.strip()
    if not word:
        return {}
    prefix, sep, value = word.partition(":")
    if sep and prefix in WORD_PREFIXES and value:
        key = WORD_PREFIXES[prefix]
        return {key: value if key == "production" else [value]}
    return {"jobs": [word]}  # `expiry:shop-test` stays a job id: 'expiry' is not a selector prefix


def key_of(selector: dict) -> str:
    """A short stable key for a canonical selector: pausing twice alike is one pause."""
    text = json.dumps(selector, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe(selector: dict) -> str:
    parts = []
    for key in LIST_KEYS:
        if key in selector:
            parts.append(f"{key}={','.join(selector[key])}")
    if "production" in selector:
        parts.append(f"production={selector['production']}")
    return " ".join(parts)


def matches(selector: dict, job: JobSpec) -> bool:
    if "jobs" in selector and job.id not in selector["jobs"]:
        return False
    if "tags" in selector and not set(selector["tags"]) & set(job.tags):
        return False
    if "types" in selector and job.type not in selector["types"]:
        return False
    if "production" in selector and selector["production"] not in (job.data.get("production"),
                                                                     job.data.get("env")):
        return False
    return True
