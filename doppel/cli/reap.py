"""`doppel reap [--dry-run] [--yes]`: remove what Doppel made for environments that are gone.

A resource tagged `doppel-env` is an orphan when the request that made it (its
`doppel-key`) is deleted or failed in the registry, or when the registry knows
nothing of it. Resources of a living environment are never touched, nor those made
for a production this Doppel's config does not describe (another Doppel sharing the
project made them, and its registry is not ours to judge by), nor a DR copy: the
environment a `dr:` policy names as its target (which serves production after a
failover, and holds the synced copy before one), and, while the DR table says a
production is away from normal (or its DR copy holds a backup) but its policy is gone
from doppel.yaml, every keyless copy of that production. Snapshots left behind after
their environment or backup expired are the usual catch.

It lists what it would remove and asks before removing (`--yes` answers for scripts;
without a terminal and without `--yes` it refuses and removes nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION

if TYPE_CHECKING:
    from core.cloud import TaggedResource

EXAMPLES = {"reap": ["doppel reap --dry-run", "doppel reap", "doppel reap --yes   # from a script"]}


@dataclass(frozen=True)
class Orphan:
    resource: "TaggedResource"
    why: str  # deleted | failed | unknown


@dataclass(frozen=True)
class DrCopies:
    """What disaster recovery keeps, which reap never judges."""
    envs: frozenset = frozenset()  # every dr.<production>.target.env of doppel.yaml
    productions: frozenset = frozenset()  # in the DR table, not normal (or holding a copy), with no policy left

    @classmethod
    def of(cls, config, dr_states) -> "DrCopies":
        from core.dr_state import NORMAL
        policies = config["dr"]
        busy = {row.production for row in dr_states.all()
                if row.production not in policies and (row.state != NORMAL or row.dr_backup_id or row.backup_id)}
        return cls(frozenset(policy["target"]["env"] for policy in policies.values()), frozenset(busy))

    def holds(self, resource: "TaggedResource") -> bool:
        tags = resource.tags
        return tags.get(TAG_ENV) in self.envs or (not tags.get(TAG_KEY)
                                                  and tags.get(TAG_PRODUCTION) in self.productions)


def orphans(cloud, registry, productions: Iterable[str] | None = None, dr: DrCopies = DrCopies()) -> list[Orphan]:
    """Every tagged resource whose environment is deleted, failed or unknown to the registry, DR copies aside.

    With `productions`, only resources made for one of them are judged.
    """
    from core.registry import ENDED
    ours = set(productions) if productions is not None else None
    found = []
    for resource in cloud.find_tagged({}):
        env = resource.tags.get(TAG_ENV)
        production = resource.tags.get(TAG_PRODUCTION)
        if not env or (ours is not None and production and production not in ours) or dr.holds(resource):
            continue
        key = resource.tags.get(TAG_KEY)
        owner = registry.by_request(key) if key else registry.latest(env)
        if owner is None:
            found.append(Orphan(resource, "unknown"))
        elif owner.state in ENDED:
            found.append(Orphan(resource, owner.state))
    return found


def describe(orphan: Orphan) -> str:
    r = orphan.resource
    return f"{r.kind} {r.name} (env {r.tags.get(TAG_ENV)}: {orphan.why})"


def reap(cloud, registry, *, dry_run: bool, productions: Iterable[str] | None = None, say=print,
         dr: DrCopies = DrCopies(), ask: Callable[[int], bool] | None = None) -> list[Orphan]:
    """List the orphans and, unless dry_run, delete each; returns those removed (dry run: those found).

    With `ask`, the list is shown first and `ask(count)` decides; only what was shown, and is
    still an orphan when the answer comes, is removed.
    """
    found = orphans(cloud, registry, productions, dr)
    if dry_run or (ask is not None and found):
        for orphan in found:
            say(f"would remove {describe(orphan)}")
    if dry_run:
        say(f"{_count(found)} (dry run: nothing removed)")
        return found
    if ask is not None and found:
        if not ask(len(found)):
            say("nothing removed")
            return []
        still = {(o.resource.kind, o.resource.id) for o in orphans(cloud, registry, productions, dr)}
        found = [o for o in found if (o.resource.kind, o.resource.id) in still]
    for orphan in found:
        say(f"removing {describe(orphan)}")
        cloud.delete_resource(orphan.resource, ignore_missing=True)
    say(f"{_count(found)} removed")
    return found


def _count(found: list) -> str:
    return f"{len(found)} orphaned resource{'s' if len(found) != 1 else ''}"


def register(sub) -> None:
    p = sub.add_parser("reap", help="remove resources Doppel made for environments that are deleted, failed or "
                                    "unknown (asks first)")
    p.add_argument("--dry-run", action="store_true", help="list them, remove nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask (needed without a terminal)")
    p.set_defaults(handler=cmd_reap)


def cmd_reap(args) -> int:
    from doppel.app import App
    from doppel.cli.dr import confirm
    app = App.load(args.config)
    answered = []

    def ask(count: int) -> bool:
        answered.append(confirm(f"remove {count} orphaned resource{'s' if count != 1 else ''}?", args.yes))
        return answered[-1]
    try:
        reap(app.cloud, app.registry, dry_run=args.dry_run, productions=app.config["productions"],
             dr=DrCopies.of(app.config, app.dr_states), ask=ask)
    finally:
        app.close()
    return 1 if answered == [False] else 0
