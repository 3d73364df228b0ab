"""`doppel reap [--dry-run]`: remove what Doppel made for environments that are gone.

A resource tagged `doppel-env` is an orphan when the request that made it (its
`doppel-key`) is deleted or failed in the registry, or when the registry knows
nothing of it. Resources of a living environment are never touched, nor those made
for a production this Doppel's config does not describe (another Doppel sharing the
project made them, and its registry is not ours to judge by). Snapshots left behind
after their environment or backup expired are the usual catch.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Iterable

from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TaggedResource
from core.registry import ENDED


@dataclass(frozen=True)
class Orphan:
    resource: TaggedResource
    why: str  # deleted | failed | unknown


def orphans(cloud, registry, productions: Iterable[str] | None = None) -> list[Orphan]:
    """Every tagged resource whose environment is deleted, failed or unknown to the registry.

    With `productions`, only resources made for one of them are judged.
    """
    ours = set(productions) if productions is not None else None
    found = []
    for resource in cloud.find_tagged({}):
        env = resource.tags.get(TAG_ENV)
        production = resource.tags.get(TAG_PRODUCTION)
        if not env or (ours is not None and production and production not in ours):
            continue
        key = resource.tags.get(TAG_KEY)
        owner = registry.by_request(key) if key else registry.latest(env)
        if owner is None:
            found.append(Orphan(resource, "unknown"))
        elif owner.state in ENDED:
            found.append(Orphan(resource, owner.state))
    return found


def reap(cloud, registry, *, dry_run: bool, productions: Iterable[str] | None = None, say=print) -> list[Orphan]:
    """List the orphans and, unless dry_run, delete each; returns them."""
    found = orphans(cloud, registry, productions)
    verb = "would remove" if dry_run else "removing"
    for orphan in found:
        r = orphan.resource
        say(f"{verb} {r.kind} {r.name} (env {r.tags.get(TAG_ENV)}: {orphan.why})")
        if not dry_run:
            cloud.delete_resource(r, ignore_missing=True)
    say(f"{len(found)} orphaned resource{'s' if len(found) != 1 else ''}"
        f"{' (dry run: nothing removed)' if dry_run else ' removed'}")
    return found


def register(sub) -> None:
    p = sub.add_parser("reap", help="remove resources Doppel made for environments that are deleted, failed or unknown")
    p.add_argument("--dry-run", action="store_true", help="list them, remove nothing")
    p.set_defaults(handler=cmd_reap)


def cmd_reap(args) -> int:
    from doppel.app import App
    app = App.load(args.config)
    try:
        reap(app.cloud, app.registry, dry_run=args.dry_run, productions=app.config["productions"])
    finally:
        app.close()
    return 0
