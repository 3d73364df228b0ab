"""The cloud driver interface, and the plain data it returns.

Functions talk to a cloud only through `CloudDriver`, and only ever see the frozen
dataclasses below — never an openstacksdk, boto3 or file-system object — so a
function runs the same against the embedded `local` driver, OpenStack or AWS, and
everything a driver returns can ride on an event as JSON (`to_dict`/`from_dict`).

Every verb is safe to repeat. Creating is idempotent by key: a driver derives a
deterministic name from the caller's idempotency key, tags what it makes with
`doppel-env` and `doppel-key`, and looks that up before making anything, so a
worker that crashed between "create" and "ack" finds its resource on the retry
instead of making a second one. Deleting takes `ignore_missing=True`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    from core.stores import ObjectStore

# Tags every driver puts on what it makes for an environment (compensation and the
# reaper find leftovers by them).
TAG_ENV = "doppel-env"
TAG_KEY = "doppel-key"
TAG_PRODUCTION = "doppel-production"
TAG_SNAPSHOT = "doppel-snapshot"

# Stack states, named as Heat and CloudFormation name them.
CREATE_IN_PROGRESS = "CREATE_IN_PROGRESS"
CREATE_COMPLETE = "CREATE_COMPLETE"
CREATE_FAILED = "CREATE_FAILED"
DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"
DELETE_COMPLETE = "DELETE_COMPLETE"
STACK_STATUSES = (CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED, DELETE_IN_PROGRESS, DELETE_COMPLETE)

# Snapshot states: a Cinder snapshot or an AMI takes a while; the local one is at once.
SNAPSHOT_IN_PROGRESS = "IN_PROGRESS"
SNAPSHOT_COMPLETE = "COMPLETE"
SNAPSHOT_FAILED = "FAILED"
SNAPSHOT_STATUSES = (SNAPSHOT_IN_PROGRESS, SNAPSHOT_COMPLETE, SNAPSHOT_FAILED)


class DriverError(Exception):
    """A cloud operation failed. The message says what, on which env, and what to do.

    `permanent` tells the worker whether a retry can help (a production missing from
    the config will not appear by itself; a busy disk may clear). Messages never hold
    a secret value.
    """

    def __init__(self, message: str, *, env: str | None = None, permanent: bool = False):
        super().__init__(message)
        self.env = env
        self.permanent = permanent


class ResourceMissing(DriverError):
    """The snapshot, stack or record asked for does not exist (and ignore_missing was False)."""

    def __init__(self, message: str, *, env: str | None = None):
        super().__init__(message, env=env, permanent=True)


class ResourceConflict(DriverError):
    """A resource with that name exists but was made for another request (another key)."""

    def __init__(self, message: str, *, env: str | None = None):
        super().__init__(message, env=env, permanent=True)


def resource_name(prefix: str, env: str, key: str) -> str:
    """A deterministic, readable name for what a driver makes for `env` under `key`.

    The same key always gives the same name, so a replay finds the first attempt's
    resource; a different key (another request for the same env) gives another name.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{prefix}-{env}-{digest}"


def env_tags(env: str, key: str, **extra: str) -> dict[str, str]:
    """The tags every resource made for `env` carries."""
    return {TAG_ENV: env, TAG_KEY: key, **{k.replace("_", "-"): v for k, v in extra.items()}}


def tags_match(tags: Mapping[str, str], tag_filter: Mapping[str, str]) -> bool:
    """True when every key/value of `tag_filter` is among `tags` (an empty filter matches all)."""
    return all(tags.get(name) == value for name, value in tag_filter.items())


def _time_out(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _time_in(text: str | datetime) -> datetime:
    if isinstance(text, datetime):
        return text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def existing_stack(found: "Stack | None", env: str, key: str) -> "Stack | None":
    """The env's stack made by this request (a replay returns it), None when there is none to reuse (none, or
    one being deleted); ResourceConflict when another request made it."""
    if found is None or found.status == DELETE_IN_PROGRESS:
        return None
    if found.tags.get(TAG_KEY) != key:
        raise ResourceConflict(f"environment {env} already has stack {found.name}, made by another request; "
                               "delete it first (doppel env delete) or choose another name", env=env)
    return found


def require_complete(current: "Snapshot", env: str) -> "Snapshot":
    """The snapshot a stack is built from, refused (permanently when it failed) while it is not complete."""
    if current.status != SNAPSHOT_COMPLETE:
        raise DriverError(f"cannot build env {env} from snapshot {current.id}: it is {current.status} "
                          f"({current.status_reason}); wait for it, or take a new one", env=env,
                          permanent=current.status == SNAPSHOT_FAILED)
    return current


def fill_parameters(mapping: Mapping[str, Any], values: Mapping[str, Any], *, env: str, production: str
                    ) -> dict:
    """A production's template parameters with their {placeholders} filled from `values` (what a driver offers:
    snapshot parts, secrets, ...); a placeholder nothing fills is named in the error with what is available
    (generated secrets and host keys left out of that list)."""
    from schemas.openstack import PARAMETER_PLACEHOLDER

    def fill(match) -> str:
        key = match.group(1).strip()
        if key not in values:
            have = ", ".join(sorted(k for k in values if not k.startswith(("secrets.", "host_key.")))) or "none"
            raise DriverError(f"parameter value {{{key}}} of production {production} has nothing to fill it "
                              f"(available: {have}); fix productions.{production}.parameters", env=env,
                              permanent=True)
        return str(values[key])

    return {name: PARAMETER_PLACEHOLDER.sub(fill, value) if isinstance(value, str) else value
            for name, value in mapping.items()}


def configurable_stack(env: str, requested: "Stack | None", current: "Stack | None") -> "Stack":
    """The env's stack as it is now, when it is the one the caller means and is complete.

    Every driver's `configure` starts here; the error says why the stack cannot be
    configured, and is permanent when waiting cannot help (no stack, rebuilt, failed).
    """
    if current is None:
        raise ResourceMissing(f"cannot configure env {env}: it has no stack; create it first", env=env)
    if requested is not None and requested.id and requested.id != current.id:
        raise ResourceConflict(f"cannot configure env {env}: it was rebuilt by another request (stack "
                               f"{current.id}, not {requested.id})", env=env)
    if current.status != CREATE_COMPLETE:
        raise DriverError(f"cannot configure env {env} yet: its stack is {current.status}"
                          f"{' (' + current.status_reason + ')' if current.status_reason else ''}",
                          env=env, permanent=current.status == CREATE_FAILED)
    return current


@dataclass(frozen=True)
class ComponentSnapshot:
    """One component of a production as captured: a copied tree, a database image, a volume snapshot."""
    kind: str  # files | config | crontab | sqlite (later mariadb, postgresql, volume ...)
    name: str
    location: str  # where the captured copy is: a path (local), a snapshot or image id (cloud)
    size: int = 0  # bytes

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "location": self.location, "size": self.size}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ComponentSnapshot":
        return cls(kind=data["kind"], name=data["name"], location=data["location"], size=int(data.get("size", 0)))


@dataclass(frozen=True)
class Snapshot:
    """A consistent capture of a production, taken for one environment."""
    id: str
    production: str
    env: str
    created: datetime
    components: tuple[ComponentSnapshot, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    status: str = SNAPSHOT_COMPLETE
    status_reason: str = ""

    @property
    def size(self) -> int:
        return sum(component.size for component in self.components)

    def to_dict(self) -> dict:
        return {"id": self.id, "production": self.production, "env": self.env,
                "created": _time_out(self.created),
                "components": [component.to_dict() for component in self.components],
                "tags": dict(self.tags), "status": self.status, "status_reason": self.status_reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Snapshot":
        return cls(id=data["id"], production=data["production"], env=data["env"],
                   created=_time_in(data["created"]),
                   components=tuple(ComponentSnapshot.from_dict(c) for c in data.get("components", ())),
                   tags=dict(data.get("tags", {})), status=data.get("status", SNAPSHOT_COMPLETE),
                   status_reason=data.get("status_reason", ""))


@dataclass(frozen=True)
class Stack:
    """An environment's infrastructure as one unit (a Heat or CloudFormation stack; a directory locally)."""
    id: str
    name: str
    env: str
    status: str
    status_reason: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)  # the endpoints: base_url, db paths/URLs ...
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == CREATE_COMPLETE

    @property
    def failed(self) -> bool:
        return self.status == CREATE_FAILED

    @property
    def in_progress(self) -> bool:
        return self.status in (CREATE_IN_PROGRESS, DELETE_IN_PROGRESS)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "env": self.env, "status": self.status,
                "status_reason": self.status_reason, "outputs": dict(self.outputs), "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Stack":
        return cls(id=data["id"], name=data["name"], env=data["env"], status=data["status"],
                   status_reason=data.get("status_reason", ""), outputs=dict(data.get("outputs", {})),
                   tags=dict(data.get("tags", {})))


@dataclass(frozen=True)
class DnsRecord:
    name: str  # fully qualified, without the trailing dot: shop.example.com
    type: str  # A | AAAA | CNAME | TXT
    value: str
    ttl: int = 300

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "value": self.value, "ttl": self.ttl}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DnsRecord":
        return cls(name=data["name"], type=data["type"], value=data["value"], ttl=int(data.get("ttl", 300)))


@dataclass(frozen=True)
class TaggedResource:
    """Anything a driver made and tagged: what compensation and the reaper see and delete."""
    kind: str  # stack | snapshot | dns_record (cloud drivers add server, volume, image ...)
    id: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "name": self.name, "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaggedResource":
        return cls(kind=data["kind"], id=data["id"], name=data["name"], tags=dict(data.get("tags", {})))


@dataclass(frozen=True)
class BackupSource:
    """What a backup of an environment (or of production) must contain.

    Everything under `root` except `exclude` (glob patterns relative to root); the
    `databases` (relative paths) must be read with the database's own online backup,
    never copied as files while they may be live. `servers` are databases on a
    server (PostgreSQL, MariaDB), dumped with the engine's own tool: each a mapping
    of name, kind, server (host, port, user, password_env: never a password),
    database, and restore_server (where a restore or a verification makes its
    database; the server itself when absent).
    """
    root: Path
    databases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    servers: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict:
        return {"root": str(self.root), "databases": list(self.databases), "exclude": list(self.exclude),
                "servers": [dict(server) for server in self.servers]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackupSource":
        return cls(root=Path(data["root"]), databases=tuple(data.get("databases", ())),
                   exclude=tuple(data.get("exclude", ())), servers=tuple(data.get("servers", ())))


@dataclass(frozen=True)
class CollectedLogs:
    """What `collect_logs` wrote: files (relative to the directory it was given), and what it could not read."""
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"files": list(self.files), "warnings": list(self.warnings)}


@runtime_checkable
class CloudDriver(Protocol):
    """What Doppel asks of a cloud. Every verb is safe to repeat."""

    name: str  # "local", "openstack", "aws"

    def snapshot(self, production: str, env: str, key: str,
                 restore: Callable[[Path, dict], object] | None = None) -> Snapshot:
        """Start (or find, by `key`) a consistent snapshot of `production` for `env`.

        May return IN_PROGRESS; `snapshot_status` tells when it is COMPLETE. With `restore`, the
        snapshot holds a backup's data instead of today's (`env create --data-version`):
        `restore(root, databases)` writes the backup's files into `root` and its server
        databases where `databases` says (BackupService.restore's `databases`).
        """

    def snapshot_status(self, snapshot_id: str) -> Snapshot:
        """The snapshot as it is now; raises ResourceMissing when there is none by that id."""

    def delete_snapshot(self, snapshot_id: str, ignore_missing: bool = True) -> None:
        """Delete the snapshot and everything it captured."""

    def create_stack(self, env: str, snapshot: Snapshot, parameters: dict, key: str) -> Stack:
        """Start building `env` from `snapshot`; returns at once, possibly CREATE_IN_PROGRESS.

        Replayed with the same key it returns the stack the first call made; when `env`
        exists but was made under another key it raises ResourceConflict.
        """

    def stack_status(self, env: str) -> Stack | None:
        """The environment's stack as it is now, or None when there is none."""

    def delete_stack(self, env: str, ignore_missing: bool = True) -> None:
        """Delete the environment and everything its stack made (data, DNS record)."""

    def configure(self, env: str, stack: Stack, policy: Mapping | None, secrets: Mapping[str, str]) -> dict:
        """Apply the clone policy to a complete stack: rewrite config, disable crons,
        anonymise data. Returns the endpoints (never a secret). Safe to repeat."""

    def find_tagged(self, tag_filter: Mapping[str, str]) -> list[TaggedResource]:
        """Every resource whose tags include all of `tag_filter`, half-made ones too."""

    def delete_resource(self, resource: TaggedResource, ignore_missing: bool = True) -> None:
        """Delete one resource found by `find_tagged`."""

    def object_store(self) -> "ObjectStore":
        """The store backups go to by default (a directory, Swift, S3)."""

    def switch_dns(self, record: DnsRecord) -> DnsRecord | None:
        """Point `record.name` at `record.value`; returns the record as it was (None if new)."""

    def get_dns(self, name: str) -> DnsRecord | None: ...

    def backup_source(self, env_or_production: str) -> BackupSource:
        """What a backup of that environment or production must read."""

    def collect_logs(self, env: str, into: Path) -> CollectedLogs:
        """Copy what the environment logged, as its production's `logs` components say (files by glob, server
        consoles), into the directory `into`; nothing when it has none. Safe to repeat while the env lives."""

    def restore_target(self, env: str, production: str | None = None, key: str | None = None) -> Path:
        """The directory a restore of `env` writes into (created, empty or not).

        `production` is the one whose backups will be restored there: an env made here
        gets that production's shape (its databases, its endpoints); `key`, the request
        it is made for, tags it as a clone's stack is tagged (TAG_KEY).
        """

    def database_targets(self, env: str, production: str) -> dict[str, dict]:
        """Where each server database (PostgreSQL, MariaDB) of `production` goes when a backup is restored for
        `env`: component name -> {kind, server, database}. Empty when it has none."""

    def production_root(self, production: str) -> Path:
        """Where production's data lives, for a failback to restore into (it may be gone: production failed)."""

    def restore_in_place(self, env_or_production: str, restore: Callable[[Path], object], *, keep_old: bool = False,
                         label: str) -> Path | None:
        """Replace the data of a production, or of an env made by `restore_target`, by what `restore(directory)`
        writes, all at once: never half-written, and left as it was when the restore fails.

        With `keep_old` the replaced data is kept and its place returned (else None);
        `label` names the attempt, so a retry clears what a dead one left.
        """


@runtime_checkable
class DrTargetDriver(Protocol):
    """What a cloud driver does for a DR target of its kind (`dr.<production>.target.driver`: openstack or
    aws), beside CloudDriver. `target` is the policy's target mapping; nothing runs on the DR side between
    failovers (no stack until `dr_stack`). core/dr_cloud.py runs these in the order of a sync, a failover or a
    failback; the local target keeps restore_target/restore_in_place instead."""

    def dr_copy_images(self, production: str, target: Mapping) -> dict[str, str]:
        """Copy the images production's servers boot from into the DR project, streamed and checksum checked,
        skipped when an image of that checksum is there already: component -> 'copied <id>' | 'kept <id>'."""

    def dr_copy_backup(self, production: str, target: Mapping, backup_id: str, source: "ObjectStore") -> str:
        """Make `backup_id` readable from the DR side (copied, sha256 checked, unless there already); says how."""

    def dr_stack(self, production: str, target: Mapping, key: str) -> "Stack | None":
        """Start (or find, made under `key`) the DR stack from production's template with the copied images;
        returns at once (CREATE_IN_PROGRESS possible). None when `key` is None and there is no DR stack."""

    def dr_restore(self, production: str, target: Mapping, backup_id: str) -> list[str]:
        """Restore `backup_id`, read from the DR side, into the DR stack's components; what was restored."""

    def dr_probe(self, production: str, target: Mapping, backup_id: str) -> list[str]:
        """What is wrong with the DR stack's components (empty when healthy)."""

    def dr_delete(self, production: str, target: Mapping) -> bool:
        """Delete the DR stack and its databases (cold again); whether there was one."""

    def dr_backup_source(self, production: str, target: Mapping) -> BackupSource:
        """What a backup of the DR stack must read (its components), for a failback to carry home."""

    def dr_restore_home(self, production: str, backup_id: str, restore: Callable[[Path, dict], object]) -> list[str]:
        """Put `backup_id` in production's components, each whole: `restore(directory, databases)` writes it where
        `databases` says (side copies), checked, then swapped in; what production held before is kept aside
        under the returned names."""

    def dr_describe(self, production: str, target: Mapping) -> dict:
        """What the DR side holds now, read only (`--dry-run`): {"where", "stack": Stack | None, "images":
        {server: DR image id}, "store": where the backups are read from there}."""
