"""Ids derived from stable inputs, so a retried step finds what its first run made instead of making a second."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone


def derived_backup_id(moment: datetime, seed: str, tag: str = "") -> str:
    """The id the same seed (an event id) at the same moment always gives, so a retried step writes the
    same backup again instead of a second one; the six hex digits come from the seed, after the tag."""
    digest = hashlib.sha256(seed.encode()).hexdigest()[:6]
    return f"{moment.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{tag}{digest}"
