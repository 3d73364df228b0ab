"""restore.requested -> restore.done: stream a backup back into an environment, checking its sha256.

Into a new name, the restore makes an environment as a clone does: registered (owner,
TTL, history), its stack tagged with the request, then `stack.ready` so `configure`
gives it its own endpoints, credentials and anonymised data; the backup is its
snapshot. Into a living environment or a DR copy, the data is swapped in whole, as it is; a production's own
backup is refused over a living environment (nothing would anonymise it there).
A production's name is refused: bringing production back is `dr failback`'s job.
"""
import errno

from core import dr
from core.chain import compensate, request_id
from core.errors import PermanentError
from core.registry import CLONING, FAILED, REQUESTED
from schemas.config import ttl_limits, ttl_refusal

NAME = "restore"
CONSUMES = "restore.requested"
EMITS = ("restore.done", "restore.failed", "stack.ready", "env.failed")
# What no retry mends: a name the filesystem refuses, a path through a file, a read-only disk.
HOPELESS = (errno.ENAMETOOLONG, errno.EINVAL, errno.ENOTDIR, errno.EISDIR, errno.EROFS)


def idempotency_key(event) -> str:
    return request_id(event)


def handle(event, deps) -> list:
    data = event.data
    name = data["env"]
    if name in deps.config["productions"]:
        raise PermanentError(f"{name} is a production; restore into an environment's name, or bring production "
                             "back with `doppel dr failback` (docs/dr.md)")
    living = deps.registry.living(name)
    ours = deps.registry.by_request(request_id(event))
    dr_copy = name in _dr_copies(deps.config)
    try:
        if ours is None and (living is not None or dr_copy):
            if not dr_copy:
                _refuse_production_data_over(living, data["backup_id"], deps)
            production = data.get("production") or (living.production if living else None)
            dr.refill(deps, name, production, data["backup_id"])  # a DR copy is made on demand
            return [deps.emit("restore.done", backup_id=data["backup_id"], env=name)]
        return _as_new_environment(event, deps)
    except OSError as exc:
        if exc.errno in HOPELESS:
            raise PermanentError(f"restore of {data['backup_id']} into {name}: {exc.strerror} "
                                 f"({exc.filename})") from exc
        raise


def _as_new_environment(event, deps) -> list:
    data = event.data
    production = data.get("production") or _production_of(data["backup_id"], deps)
    if production not in deps.config["productions"]:
        known = ", ".join(sorted(deps.config["productions"])) or "none"
        raise PermanentError(f"backup {data['backup_id']} is of {production!r}, which doppel.yaml does not describe "
                             f"(productions: {known}); name the production it is a copy of")
    default_ttl, max_ttl = ttl_limits(deps.config["environments"], production)
    ttl = data.get("ttl_seconds") or default_ttl
    env, created = deps.registry.request(
        name=data["env"], request_id=request_id(event), production=production, owner=data.get("owner"),
        data_version=data["backup_id"], ttl_seconds=int(ttl) if ttl else None, correlation_id=event.correlationid,
        reply_to=data.get("reply_to"))
    if not created and env.request_id != request_id(event):
        raise PermanentError(f"the name {env.name} is taken by a living environment ({env.state}); "
                             "restore under another name, or delete that one first")
    if env.state == FAILED and deps.registry.living(env.name) is None:
        env = deps.registry.move(env, REQUESTED, event_id=event.id, reason="replayed after failure")
    if env.state == REQUESTED:
        refusal = ttl_refusal(env.ttl_seconds, max_ttl)
        if refusal:
            raise PermanentError(f"environment {env.name}: {refusal}")
    if env.state not in (REQUESTED, CLONING):
        return []  # a replay after the chain moved on
    env = deps.registry.move(env, CLONING, event_id=event.id, reason=f"restoring backup {data['backup_id']}")
    root = deps.cloud.restore_target(env.name, production=production, key=env.request_id)
    if not any(root.iterdir()):  # a restore is renamed into place whole: a non-empty root is a finished one
        deps.backups.restore(data["backup_id"], root,
                             databases=deps.cloud.database_targets(env.name, production))
    stack = deps.cloud.stack_status(env.name)
    return [deps.emit("restore.done", backup_id=data["backup_id"], env=env.name),
            deps.emit("stack.ready", env=env.name, request=env.request_id, stack=stack.to_dict())]


def _refuse_production_data_over(env, backup_id: str, deps) -> None:
    """Over a living environment a backup lands as it is, with no configure step after it: one of a production
    would bring production's personal data and settings into the copy. Refused (personal data never reaches a
    copy); into a new name the same backup is configured and anonymised like a clone."""
    source = deps.backups.find(backup_id).env
    if source in deps.config["productions"]:
        raise PermanentError(f"backup {backup_id} is of the production {source}: over the living environment "
                             f"{env.name} it would land as it is, not anonymised; restore it into a new name, which "
                             "is configured and anonymised like a clone")


def _production_of(backup_id: str, deps) -> str:
    """The production a backup is a copy of: its own name, or the production its environment was cloned from."""
    source = deps.backups.find(backup_id).env
    if source in deps.config["productions"]:
        return source
    env = deps.registry.latest(source)
    if env is None:
        raise PermanentError(f"backup {backup_id} is of {source}, which is neither a production nor an environment "
                             "Doppel knows; name the production it is a copy of (--production)")
    return env.production


def _dr_copies(config) -> set:
    return {policy["target"]["env"] for policy in config["dr"].values()}


def on_failure(event, reason: str, deps) -> list:
    failed = [deps.emit("restore.failed", env=event.data["env"], step=NAME, reason=reason, cause_id=event.id)]
    env = deps.registry.by_request(request_id(event))
    if env is not None and env.state != FAILED:
        failed += compensate(env, NAME, reason, deps, event.id)  # half-made environment deleted, marked failed
    return failed
