"""`doppel backup now|list|show|restore|verify|sync|prune`: backups from the command line."""
from __future__ import annotations

import sys
import time

from doppel.cli.common import CommandError, build_event, duration, env_name
from doppel.cli.output import add_output, dump, emit, when
from doppel.cli.progress import show_progress, size

EXAMPLES = {
    "backup": ["doppel backup now shop", "doppel backup list shop", "doppel backup restore ID --to shop-copy"],
    "backup now": ["doppel backup now shop", "doppel backup now perf-test --timeout 2h"],
    "backup list": ["doppel backup list", "doppel backup list shop -o json"],
    "backup show": ["doppel backup show 20250301T020000Z-1a2b", "doppel backup show 20250301T020000Z-1a2b -o yaml"],
    "backup restore": ["doppel backup restore 20250301T020000Z-1a2b --to shop-copy --ttl 1d   # a new environment",
                       "doppel backup restore 20250301T020000Z-1a2b --to perf-test   # over a living one"],
    "backup verify": ["doppel backup verify 20250301T020000Z-1a2b"],
    "backup sync": ["doppel backup sync"],
    "backup prune": ["doppel backup prune shop --dry-run", "doppel backup prune shop"],
}


def register(sub) -> None:
    p = sub.add_parser("backup", help="backups: now, list, show, restore, verify, sync, prune")
    backup = p.add_subparsers(dest="backup_command", metavar="ACTION", required=True)

    q = backup.add_parser("now", help="back up an environment or a production now")
    q.add_argument("env", help="an environment or production name")
    q.add_argument("--timeout", default="1h", help="how long to wait for it (default 1h)")
    q.set_defaults(handler=cmd_now)

    q = backup.add_parser("list", help="backups in the catalogue, oldest first")
    q.add_argument("env", nargs="?", help="only this environment's or production's")
    q.add_argument("--all", action="store_true", help="pruned ones too")
    add_output(q)
    q.set_defaults(handler=cmd_list)

    q = backup.add_parser("show", help="one backup: where, how big, its checksum and components")
    q.add_argument("backup_id")
    add_output(q)
    q.set_defaults(handler=cmd_show)

    q = backup.add_parser("restore", help="restore a backup into a new environment, or over a living one",
                          description="Into a new name, the backup becomes an environment as a clone does: "
                                      "registered with its owner and TTL, its configuration rewritten with its own "
                                      "paths and fresh credentials, its personal data anonymised. Over a living "
                                      "environment, its data is replaced whole by the backup's, as it is; a "
                                      "production's own backup is refused there (nothing would anonymise it).")
    q.add_argument("backup_id")
    q.add_argument("--to", dest="env", required=True, help="the environment to restore into")
    q.add_argument("--production", help="the production it is a copy of (default: the backup's)")
    q.add_argument("--ttl", help="a new environment's TTL (e.g. 8h; default: the production's default TTL)")
    q.add_argument("--owner", help="who a new environment is for")
    q.add_argument("--timeout", default="1h", help="how long to wait for it (default 1h)")
    q.set_defaults(handler=cmd_restore)

    q = backup.add_parser("verify", help="download, check sha256, test-restore, check database integrity")
    q.add_argument("backup_id")
    q.set_defaults(handler=cmd_verify)

    q = backup.add_parser("sync", help="rebuild the catalogue from the store's manifests")
    q.set_defaults(handler=cmd_sync)

    q = backup.add_parser("prune", help="delete the backups the retention policy does not keep")
    q.add_argument("env")
    q.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    q.set_defaults(handler=cmd_prune)


def _wait_for(app, cause, done_types, timeout: float):
    """Until an event of `done_types` appears in the cause's chain; the embedded bus runs it here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in app.audit.events(correlation_id=cause.id):
            if record.type in done_types:
                return record
        time.sleep(0.1)
    raise CommandError(f"nothing came of {cause.type} {cause.id} within {timeout:.0f} s; "
                       "is a worker running? (`doppel events --correlation ID` follows it)", 3)


def _publish(app, event) -> None:
    from core.broker import event_message
    from doppel.cli.env import serve_embedded
    serve_embedded(app)
    app.broker.publish([event_message(event)])


def _request(app, event, timeout: float, check=None):
    """Publish `event` and wait for the `.done` or `.failed` of its chain; returns (record, failure text)."""
    from doppel.app import safe
    kind = event.type.split(".")[0]
    try:
        if check:
            check()
        _publish(app, event)
        result = _wait_for(app, event, (f"{kind}.done", f"{kind}.failed"), timeout)
    finally:
        app.close()
        if sys.stderr.isatty():
            print(file=sys.stderr)  # ends the live progress line
    failure = safe(result.data["reason"]) if result.type.endswith(".failed") else None
    return result, failure


def _app(args):
    from doppel.app import App
    return App.load(args.config)


def cmd_now(args) -> int:
    timeout = duration(args.timeout, "--timeout")
    event = build_event("backup.due", {"env": args.env, "reason": "manual"})
    app = _app(args)
    show_progress(app)
    result, failure = _request(app, event, timeout)
    if failure:
        print(f"backup of {args.env} failed: {failure}", file=sys.stderr)
        return 1
    print(f"{result.data['backup_id']}  {result.data['size']:,} bytes  sha256 {result.data['sha256']}")
    return 0


LIST_COLUMNS = (("id", "ID", 40), ("env", "ENV", 40), ("size", "SIZE", 12), ("created", "CREATED", 24),
                ("reason", "REASON", 10), ("verified", "VERIFIED", 8), ("store", "STORE", 40))


def cmd_list(args) -> int:
    app = _app(args)
    try:
        entries = app.catalogue.list(args.env, include_deleted=args.all)
    finally:
        app.close()
    rows = [{"id": e.id, "env": e.env, "size": e.size if args.output != "table" else size(e.size),
             "created": e.created_at, "reason": e.reason,
             "verified": None if e.verify_ok is None else e.verify_ok, "store": e.store,
             "pruned": e.deleted_at} for e in entries]
    if args.output == "table":
        for row, e in zip(rows, entries):
            row["verified"] = "-" if e.verify_ok is None else ("ok" if e.verify_ok else "FAILED")
            row["store"] = e.store + (" (pruned)" if e.deleted_at else "")
    emit(rows, LIST_COLUMNS, args.output, empty="no backups" + (f" of {args.env}" if args.env else "") +
         "; `doppel backup sync` rebuilds the catalogue from the store")
    return 0


def cmd_show(args) -> int:
    from doppel.app import safe
    app = _app(args)
    try:
        entry = app.catalogue.get(args.backup_id)
        manifest = _find(app, args.backup_id)
        store = app.backups.store.name
    finally:
        app.close()
    verified = None
    if entry and entry.verified_at:
        verified = {"at": entry.verified_at, "ok": bool(entry.verify_ok),
                    "detail": "ok" if entry.verify_ok else safe(entry.verify_detail or "")}
    shown = {"id": manifest.backup_id, "env": manifest.env, "store": store, "archive": manifest.archive_key,
             "compression": manifest.compression, "size": manifest.size,
             "uncompressed_size": manifest.uncompressed_size, "sha256": manifest.sha256, "created": manifest.created,
             "completed": manifest.completed, "verified": verified,
             "components": [{"kind": c.kind, "name": c.name} for c in manifest.components],
             "warnings": list(manifest.warnings)}
    if args.output != "table":
        dump(shown, args.output)
        return 0
    print(f"backup {manifest.backup_id} of {manifest.env}")
    print(f"  store      {store}")
    print(f"  archive    {manifest.archive_key} ({manifest.compression})")
    print(f"  size       {size(manifest.size)} ({size(manifest.uncompressed_size)} before compression)")
    print(f"  sha256     {manifest.sha256}")
    print(f"  created    {when(manifest.created)}  completed {when(manifest.completed)}")
    if verified:
        print(f"  verified   {when(verified['at'])}: {verified['detail']}")
    for component in manifest.components:
        print(f"  component  {component.kind:<8} {component.name}")
    for warning in manifest.warnings:
        print(f"  warning    {warning}")
    return 0


def _find(app, backup_id: str):
    from clouds.backups import BackupNotFound
    try:
        return app.backups.find(backup_id)
    except BackupNotFound as exc:
        raise CommandError(f"{exc}; `doppel backup list` shows the backups") from None


def _is_new(app, name: str) -> bool:
    """Whether a restore into `name` makes a new environment (not a living one, a DR copy or a production)."""
    if name in app.config["productions"]:
        raise CommandError(f"--to {name}: that is a production; restore into an environment's name, or bring "
                           "production back with `doppel dr failback` (docs/dr.md)", 2)
    dr_copies = {policy["target"]["env"] for policy in app.config["dr"].values()}
    return app.registry.living(name) is None and name not in dr_copies


def cmd_restore(args) -> int:
    from core.chain import request_id
    from doppel.cli.env import _ours_or_refused, follow, report
    env_name(args.env, "--to")
    timeout = duration(args.timeout, "--timeout")
    data = {"backup_id": args.backup_id, "env": args.env}
    for key in ("production", "owner"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    if args.ttl:
        data["ttl_seconds"] = int(duration(args.ttl, "--ttl") + 0.999)
    event = build_event("restore.requested", data)
    app = _app(args)
    show_progress(app)
    if not _is_new(app, args.env):
        if args.ttl or args.owner:
            app.close()
            raise CommandError(f"{args.env} exists: --ttl and --owner are for a new environment", 2)
        _, failure = _request(app, event, timeout, check=lambda: _find(app, args.backup_id))
        if failure:
            print(f"restore of {args.backup_id} into {args.env} failed: {failure}", file=sys.stderr)
            return 1
        print(f"restored {args.backup_id} into {args.env}")
        return 0
    try:
        _find(app, args.backup_id)
        _publish(app, event)
        print(f"restoring {args.backup_id} into a new environment {args.env}", file=sys.stderr)
        from core.registry import FAILED, READY
        env = follow(app, lambda: _ours_or_refused(app, args.env, request_id(event)), (READY, FAILED), timeout)
        if env is None:
            return 1
        return report(env)
    finally:
        app.close()


def cmd_verify(args) -> int:
    from doppel.app import safe
    app = _app(args)
    show_progress(app)
    try:
        _find(app, args.backup_id)
        result = app.backups.verify(args.backup_id)
    finally:
        app.close()
    if not result.ok:
        print(f"verification FAILED: {safe(str(result))}", file=sys.stderr)
        return 1
    print(f"{result} in {result.seconds:.1f} s")
    return 0


def cmd_sync(args) -> int:
    app = _app(args)
    try:
        count = app.backups.sync()
        store = app.backups.store.name
    finally:
        app.close()
    print(f"catalogue holds {count} backup(s) from {store}")
    return 0


def cmd_prune(args) -> int:
    from dataclasses import asdict
    app = _app(args)
    try:
        known = (args.env in app.config["productions"] or app.registry.latest(args.env) is not None
                 or app.catalogue.list(args.env, include_deleted=True))
        if not known:
            raise CommandError(f"nothing is known of {args.env!r}: no production, environment or backup of that name; "
                               "`doppel backup list` shows what has backups", 1)
        result = app.backups.prune(args.env, dry_run=args.dry_run)
        policy = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in asdict(app.backups.retention).items())
    finally:
        app.close()
    verb = "would delete" if args.dry_run else "deleted"
    for manifest in result.removed:
        print(f"{verb} {manifest.backup_id}")
    print(f"{len(result.removed)} {verb}, {len(result.kept)} kept (policy: {policy})", file=sys.stderr)
    return 0
