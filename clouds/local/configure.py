"""Applying a clone policy to a freshly built environment: config, crons, data, in that order.

1. Rewrite rules: each config key set to its templated value — the stack's outputs
   (its own database, its own URL) and this environment's fresh secrets.
2. Crons: every active crontab line commented out (the file is kept).
3. Anonymisation: the rules of each database, run once per environment (a replay
   does not pseudonymise pseudonyms), inside the environment's copy only.
4. Isolation: refuse the environment if a config file still names production's
   directory or URL — a copy writing into production's database is the one
   mistake this tool must never make.

Safe to repeat: rewrites set the same values, disabled crons stay disabled, and
`configure.json` remembers which databases are anonymised already.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from clouds.local import state
from clouds.local.components import kind_of
from clouds.rewrite.anonymise import Pseudonyms
from clouds.rewrite.configfile import RewriteError, rewrite_file
from clouds.rewrite.crontab import disable_crontab_file
from core.cloud import DriverError
from schemas.production import ProductionConfigError, load_production
from schemas.templates import TemplateError, render


def apply_clone_policy(*, env: str, production: str, spec: Mapping, policy: Mapping | None,
                       secrets: dict[str, str], outputs: dict, env_root: Path, marker: Path,
                       salt: Callable[[], bytes]) -> dict:
    """Configure the environment at `env_root`; returns its endpoints (the stack outputs, no secrets)."""
    policy = _policy(env, production, spec, policy)
    done = state.read_json(marker) or {}
    record = {
        "rewritten": _rewrite(env, production, policy, secrets, outputs, env_root),
        "crons_disabled": _disable_crons(env_root, spec) if policy["crons"] == "disable" else 0,
        "anonymised": done.get("anonymised", {}),
    }
    for component in spec["components"]:
        rules = [rule for rule in policy["anonymise"] if rule["database"] == component["name"]]
        # A server database is always looked at: a column that looks personal and has no rule fails the clone.
        if (rules or kind_of(component).on_server) and component["name"] not in record["anonymised"]:
            record["anonymised"][component["name"]] = _anonymise(env, component, env_root, rules, salt)
            state.write_json(marker, {**record, "finished": False})  # a retry skips this database
    if policy["isolate"]:
        _check_isolation(env, production, spec, policy, env_root)
    state.write_json(marker, {**record, "finished": True,
                              "configured_at": datetime.now(timezone.utc).isoformat()})
    return dict(outputs)


def _policy(env: str, production: str, spec: Mapping, policy: Mapping | None) -> dict:
    """The clone policy to apply: the given one, validated against the production, or the production's own."""
    if policy is None or policy == spec["clone"]:  # the production's own, validated with it (no second load:
        return spec["clone"]                       # that took ~7 ms of every configure)
    try:
        return load_production(production, {**spec, "clone": dict(policy)})["clone"]
    except ProductionConfigError as exc:
        raise DriverError(f"cannot configure env {env}: the clone policy is wrong: {exc}", env=env,
                          permanent=True) from None


def _rewrite(env: str, production: str, policy: Mapping, secrets: Mapping[str, str], outputs: Mapping,
             env_root: Path) -> int:
    """Apply every rewrite rule, one write per file; returns how many keys were set."""
    by_file: dict[tuple[str, str], list[tuple[str, object]]] = {}
    for rule in policy["rewrite"]:
        try:
            value = render(rule["value"], outputs=outputs, secrets=secrets, env=env, production=production)
        except TemplateError as exc:
            raise DriverError(f"cannot configure env {env}: {rule['file']} key {rule['key']}: {exc}; pass every "
                              "secret named in clone.secrets", env=env, permanent=True) from None
        by_file.setdefault((rule["file"], rule["format"]), []).append((rule["key"], value))
    for (relative, fmt), changes in by_file.items():
        path = env_root / relative
        if not path.is_file():
            raise DriverError(f"cannot configure env {env}: {relative} is not in the environment (it was not in "
                              "production when the snapshot was taken); fix clone.rewrite or the production",
                              env=env, permanent=True)
        try:
            rewrite_file(path, fmt, changes)
        except RewriteError as exc:
            raise DriverError(f"cannot configure env {env}: {exc}", env=env, permanent=True) from None
    return sum(len(changes) for changes in by_file.values())


def _disable_crons(env_root: Path, spec: Mapping) -> int:
    total = 0
    for component in spec["components"]:
        if component["kind"] == "crontab" and (env_root / component["path"]).exists():
            total += disable_crontab_file(env_root / component["path"])
    return total


def _anonymise(env: str, component: Mapping, env_root: Path, rules: list, salt: Callable[[], bytes]) -> dict:
    try:
        kind = kind_of(component)
        if kind.on_server:
            return kind.anonymise_database(component, env, rules, salt())
        return kind.anonymise(component, env_root, rules, Pseudonyms(salt()))
    except (LookupError, RuntimeError) as exc:
        raise DriverError(f"cannot anonymise database {component['name']} of env {env}: {exc}", env=env,
                          permanent=True) from None


def _check_isolation(env: str, production: str, spec: Mapping, policy: Mapping, env_root: Path) -> None:
    """Refuse if a config file of the environment still names production's directory or URL."""
    production_root = str(Path(spec["path"]).resolve())
    needles = {production_root: "directory", spec["base_url"].rstrip("/"): "URL"}
    files = {c["path"] for c in spec["components"] if c["kind"] == "config"}
    files.update(rule["file"] for rule in policy["rewrite"])
    for relative in sorted(files):
        path = env_root / relative
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for needle, what in needles.items():
            # the needle must end there: /srv/shop is not /srv/shop-copies, shop.example.com not shop.example.co.uk
            if re.search(re.escape(needle) + r"(?![\w.-])", text):
                raise DriverError(
                    f"env {env}: {relative} still names production {production}'s {what} ({needle}); add a "
                    f"clone.rewrite rule for that key (or set clone.isolate: false if it is only a comment)",
                    env=env, permanent=True)
