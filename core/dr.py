"""What the disaster-recovery functions share: the policy, the backup to use, the DR copy's refresh,
what the health probe (`deps.probe`) found, and the DNS switch. Not a function itself:
`functions/failover.py`, `failback.py`, `sync.py` and `drill.py` use it (as the environment chain uses
`core/chain.py`).
"""
from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from core.cloud import DnsRecord
from core.dr_state import DrStates
from core.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

FROZEN_TYPES = ("sync.due", "backup.due")  # the jobs that would overwrite the DR copy or back up a dead site


def states(deps) -> DrStates:
    """The DR state table (`deps.dr`, made in doppel/app.py)."""
    return deps.dr


def policy_for(deps, production: str) -> dict:
    """The `dr:` policy of a production; permanent when there is none (retrying cannot write one)."""
    policy = deps.config["dr"].get(production)
    if policy is None:
        known = ", ".join(sorted(deps.config["dr"])) or "none"
        raise PermanentError(f"production {production!r} has no DR policy (policies: {known}); add dr.{production} "
                             "to doppel.yaml (docs/dr.md)")
    if production not in deps.config["productions"]:
        raise PermanentError(f"dr.{production} names no production of doppel.yaml; fix the name under dr:")
    return policy


def production_of_alert(deps, data: dict) -> str | None:
    """The production an alert concerns: its `production` field, else the policy listing its alarm id or name."""
    if data.get("production"):
        return data["production"]
    for production, policy in deps.config["dr"].items():
        if data["alarm_id"] in policy["alarms"] or data.get("alarm_name") in policy["alarms"]:
            return production
    return None


def freeze_selector(production: str) -> dict:
    return {"types": list(FROZEN_TYPES), "production": production}


def dr_env(policy: dict) -> str:
    return policy["target"]["env"]


def choose_backup(deps, production: str, policy: dict):
    """The backup a failover or sync restores, by the policy's `backup:` (docs/dr.md, "Which backup").

    newest_verified (default): the newest verified backup, else the newest with a warning;
    newest: the newest, verified or not (best RPO); verified_only: refuse when none is verified.
    """
    newest = deps.backups.newest(production)
    if newest is None:
        raise PermanentError(f"production {production} has no backup to restore; run `doppel backup now "
                             f"{production}` (or wait for the nightly backup), then try again")
    if policy["backup"] == "newest":
        return newest
    verified = deps.backups.newest(production, verified_only=True)
    if verified is not None:
        return verified
    if policy["backup"] == "verified_only":
        raise PermanentError(f"production {production} has no verified backup and dr.{production}.backup "
                             f"is verified_only; verify one (`doppel dr drill {production}`) or set "
                             "backup: newest_verified")
    log.warning("production %s has no verified backup: restoring the newest, %s, unverified (its archive's "
                "sha256 is still checked, and the health probe checks its databases)", production, newest.id)
    return newest


def restore_dr_copy(deps, production: str, policy: dict, backup_id: str) -> Path:
    """Make (on demand) the DR copy and fill it with `backup_id`, swapped in whole by the driver; its root."""
    root = refill(deps, dr_env(policy), production, backup_id)
    states(deps).note(production, dr_backup_id=backup_id)
    return root


def refill(deps, env: str, production: str | None, backup_id: str) -> Path:
    """Make `env`'s stack if it has none, and replace its data with `backup_id`: the files swapped in whole by the
    driver, as a failback replaces production's (never half old, half restored), and the server databases
    restored into the env's own (`database_targets`: each dropped and made again). Its root."""
    databases = deps.cloud.database_targets(env, production) if production else None
    root = deps.cloud.restore_target(env, production=production)
    deps.cloud.restore_in_place(env, lambda into: deps.backups.restore(backup_id, into, databases=databases),
                                label=backup_id)
    return root


def require_healthy(production: str, where: str, problems: list[str]) -> None:
    """Raise (retryable) when the probe found problems, saying what and where."""
    if problems:
        raise TransientError(f"the DR copy of {production} at {where} is not healthy: {'; '.join(problems)}; "
                             "check the backup (`doppel backup verify`) and the DR target")


def dns_provider(deps, policy: dict):
    """The policy's DNS provider (`deps.dns_for`, made in doppel/app.py)."""
    return deps.dns_for(policy)


def wanted_records(policy: dict, fill=None) -> list[DnsRecord]:
    """The records a failover sets; `fill(value)` resolves a value's placeholders (a cloud target's
    {outputs.X}, core.dr_cloud.fill_outputs) when given."""
    return [DnsRecord(r["name"].rstrip(".").lower(), r["type"], fill(r["value"]) if fill else r["value"], r["ttl"])
            for r in policy["dns"]["records"]]


def remember_dns(deps, production: str, policy: dict) -> list[dict]:
    """Read the records the failover will replace, once, before any switch, and keep them in the row."""
    row = states(deps).get(production)
    if row.previous_dns or row.dns_switched:
        return row.previous_dns  # a replay: what we read the first time is what the failback must restore
    provider = dns_provider(deps, policy)
    previous = []
    for record in wanted_records(policy):
        current = provider.get(record.name, record.type)
        previous.append({"name": record.name, "type": record.type,
                         "record": current.to_dict() if current else None})
    states(deps).note(production, previous_dns=previous)
    return previous


def switch_to_dr(deps, production: str, policy: dict, fill=None) -> None:
    """Point the policy's names at the DR copy. The row says so from the first name moved: a switch failing
    half-way leaves a name on the DR copy, which only a failback (or the failover asked again) may undo."""
    provider = dns_provider(deps, policy)
    first, *rest = wanted_records(policy, fill) or [None]
    if first is not None:
        provider.switch(first)
    states(deps).note(production, dns_switched=True)
    for record in rest:
        provider.switch(record)


def switch_back(deps, production: str, policy: dict, previous: list[dict]) -> None:
    """Put every name back as it was before the failover (deleting those that did not exist)."""
    provider = dns_provider(deps, policy)
    for entry in previous:
        if entry["record"]:
            provider.switch(DnsRecord.from_dict(entry["record"]))
        else:
            provider.delete(entry["name"], entry["type"], ignore_missing=True)
    states(deps).note(production, dns_switched=False)


def seconds_between(earlier: datetime, later: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


def failover_plan(deps, production: str, policy: dict) -> list[dict]:
    """What a failover of `production` would do now, step by step, reading only (`doppel dr failover --dry-run`).

    Each step: {"step", "action", "detail"}; a step that would fail says why in `detail` with action "fails",
    and the plan stops there, as the failover would.
    """
    from core.dr_state import FAILED_OVER, FAILING_OVER, PENDING
    row = states(deps).get(production)
    if row.state in (FAILED_OVER, FAILING_OVER) and not (row.state == FAILING_OVER and row.holder is None):
        return [{"step": "decide", "action": "nothing",
                 "detail": f"{production} is {row.state} since {row.since:%Y-%m-%d %H:%M:%S} UTC; "
                           f"`doppel dr failback {production}` brings it home"}]
    start = "answers the alarm waiting for confirmation" if row.state == PENDING else f"starts from {row.state}"
    plan = [{"step": "decide", "action": "lock", "detail": f"takes the DR lock of {production} ({start})"},
            {"step": "freeze", "action": "pause",
             "detail": f"pauses {', '.join(FROZEN_TYPES)} of {production} until the failback"}]
    try:
        backup = choose_backup(deps, production, policy)
    except PermanentError as exc:
        return plan + [{"step": "backup", "action": "fails", "detail": str(exc)}]
    age = seconds_between(backup.created_at, deps.clock())
    plan.append({"step": "backup", "action": "choose",
                 "detail": f"{backup.id} ({'verified' if backup.verify_ok else 'not verified'}, "
                           f"made {backup.created_at:%Y-%m-%d %H:%M:%S} UTC: RPO {age:.0f} s if the alarm came now; "
                           f"policy backup: {policy['backup']})"})
    env = dr_env(policy)
    stack = deps.cloud.stack_status(env)
    if stack is not None and row.dr_backup_id == backup.id:
        plan.append({"step": "restore", "action": "keep", "detail": f"the DR copy {env} already holds {backup.id}"})
    else:
        made = "exists" if stack is not None else "is made on first use"
        plan.append({"step": "restore", "action": "restore",
                     "detail": f"restores {backup.id} into the DR copy {env} ({made}), swapped in whole"})
    paths = policy["health"].get("paths") or [c["path"] for c in deps.config["productions"][production]
                                              .get("components", []) if "path" in c]
    plan.append({"step": "probe", "action": "check", "detail": f"the DR copy holds {', '.join(paths) or '-'}"
                 " (databases pass their integrity check)"})
    provider = dns_provider(deps, policy)
    for record in wanted_records(policy):
        current = provider.get(record.name, record.type)
        was = f"{current.value} (ttl {current.ttl})" if current else "no record"
        plan.append({"step": "dns", "action": "switch",
                     "detail": f"{record.name} {record.type}: {was} -> {record.value} (ttl {record.ttl})"})
    if policy["health"].get("url"):
        plan.append({"step": "probe", "action": "check",
                     "detail": f"GET {policy['health']['url']} answers {policy['health'].get('expect_status', 200)}"})
    plan.append({"step": "done", "action": "emit",
                 "detail": f"{production} becomes failed_over; failover.done carries the backup, RPO and RTO"})
    return plan
