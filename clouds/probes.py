"""The health probe of a restored copy, run from this host: its files and databases on disk, its URL over HTTP.

The DR functions reach it as `deps.probe` (core.deps.HealthProbe): failover probes
the DR copy before the DNS switch (files) and after it (HTTP), failback the
restored production, a drill its scratch copy.
"""
from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path


class HostProbe:
    """`HealthProbe` from this host: paths and SQLite databases under a local root, and the policy's URL."""

    def files(self, production: Mapping, root: Path, policy: Mapping) -> list[str]:
        """What is wrong with a restored copy at `root`: missing paths, databases failing integrity_check.

        `production` is the production's entry of doppel.yaml (its components); `policy`
        its `dr:` policy, or any mapping with a `health:` (`paths` to check, else the
        components' paths).
        """
        components = production.get("components", [])
        paths = policy["health"].get("paths") or [c["path"] for c in components if "path" in c]
        problems = [f"{p} is missing" for p in paths if not (root / p).exists()]
        for component in components:
            if component.get("kind") == "sqlite" and (root / component["path"]).exists():
                problems += _integrity(root / component["path"], component["path"])
        return problems

    def http(self, policy: Mapping) -> list[str]:
        """The HTTP probe of the policy (none configured: nothing wrong)."""
        health = policy["health"]
        if not health.get("url"):
            return []
        try:
            with urllib.request.urlopen(health["url"], timeout=health["timeout"]) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            return [f"{health['url']} did not answer: {exc}"]
        return [] if status == health["expect_status"] else [f"{health['url']} answered {status}, "
                                                             f"not {health['expect_status']}"]


def _integrity(database: Path, name: str) -> list[str]:
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            answer = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return [f"{name} cannot be opened: {exc}"]
    return [] if answer == ["ok"] else [f"{name} fails integrity_check: {'; '.join(answer[:3])}"]
