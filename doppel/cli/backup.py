"""`doppel backup now|list|show|restore|verify|sync|prune`: backups from the command line."""
from __future__ import annotations

import sys
import time

from core.broker import event_message
from doppel.app import App, safe
from doppel.cli.common import CommandError, build_event
from doppel.cli.env import serve_embedded


def register(sub) -> None:
    p = sub.add_parser("backup", help="backups: now, list, show, restore, verify, sync, prune")
    backup = p.add_subparsers(dest="backup_command", metavar="ACTION", required=True)

    q = backup.add_parser("now", help="back up an environment or a production now")
    q.add_argument("env", help="an environment or production name")
    q.add_argument("--timeout", type=float, default=3600, help="seconds to wait for it (default 3600)")
    q.set_defaults(handler=cmd_now)

    q = backup.add_parser("list", help="backups in the catalogue, oldest first")
    q.add_argument("env", nargs="?", help="only this environment's or production's")
    q.add_argument("--all", action="store_true", help="pruned ones too")
    q.set_defaults(handler=cmd_list)

    q = backup.add_parser("show", help="one backup: where, how big, its checksum and components")
    q.add_argument("backup_id")
    q.set_defaults(handler=cmd_show)

    q = backup.add_parser("restore", help="restore a backup into an environment (made if missing)")
    q.add_argument("backup_id")
    q.add_argument("--to", dest="env", required=True, help="the environment to restore into")
    q.add_argument("--production", help="the production it is a copy of (gives a new environment its endpoints)")
    q.add_argument("--timeout", type=float, default=3600)
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


class LiveProgress:
    """Bytes and rate of a transfer on stderr: one updating line on a terminal, a line every 5 s otherwise."""

    def __init__(self, what: str):
        self.what, self.tty = what, sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, rate: float) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        line = f"  {self.what}: {done / 1e6:,.1f} MB, {rate / 1e6:,.1f} MB/s"
        print("\r" + line if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    @classmethod
    def factory(cls):
        return lambda what: cls(what)


def _wait_for(app: App, cause, done_types, timeout: float):
    """Until an event of `done_types` appears in the cause's chain; the embedded bus runs it here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in app.audit.events(correlation_id=cause.id):
            if record.type in done_types:
                return record
        time.sleep(0.1)
    raise CommandError(f"nothing came of {cause.type} {cause.id} within {timeout:.0f} s; "
                       "is a worker running? (`doppel events --correlation ID` follows it)", 3)


def _publish(app: App, event) -> None:
    serve_embedded(app)
    app.broker.publish([event_message(event)])


def _request(app: App, event, timeout: float, check=None):
    """Publish `event` and wait for the `.done` or `.failed` of its chain; returns (record, failure text)."""
    kind = event.type.split(".")[0]
    try:
        if check:
            check()
        _publish(app, event)
        result = _wait_for(app, event, (f"{kind}.done", f"{kind}.failed"), timeout)
    finally:
        app.close()
    print(file=sys.stderr)  # ends the live progress line
    failure = safe(result.data["reason"]) if result.type.endswith(".failed") else None
    return result, failure


def cmd_now(args) -> int:
    app = App.load(args.config)
    app.backups.progress = LiveProgress.factory()
    result, failure = _request(app, build_event("backup.due", {"env": args.env, "reason": "manual"}), args.timeout)
    if failure:
        print(f"backup of {args.env} failed: {failure}", file=sys.stderr)
        return 1
    print(f"{result.data['backup_id']}  {result.data['size']:,} bytes  sha256 {result.data['sha256']}")
    return 0


def cmd_list(args) -> int:
    app = App.load(args.config)
    entries = app.catalogue.list(args.env, include_deleted=args.all)
    app.close()
    if not entries:
        print("no backups" + (f" of {args.env}" if args.env else "") +
              "; `doppel backup sync` rebuilds the catalogue from the store", file=sys.stderr)
        return 0
    print(f"{'ID':<24} {'ENV':<16} {'SIZE':>14} {'REASON':<10} {'VERIFIED':<10} STORE")
    for e in entries:
        verified = "-" if e.verify_ok is None else ("ok" if e.verify_ok else "FAILED")
        state = " (pruned)" if e.deleted_at else ""
        print(f"{e.id:<24} {e.env:<16} {e.size:>14,} {e.reason or '-':<10} {verified:<10} {e.store}{state}")
    return 0


def cmd_show(args) -> int:
    app = App.load(args.config)
    try:
        entry = app.catalogue.get(args.backup_id)
        manifest = _find(app, args.backup_id)
    finally:
        app.close()
    print(f"backup {manifest.backup_id} of {manifest.env}")
    print(f"  store      {app.backups.store.name}")
    print(f"  archive    {manifest.archive_key} ({manifest.compression})")
    print(f"  size       {manifest.size:,} bytes ({manifest.uncompressed_size:,} before compression)")
    print(f"  sha256     {manifest.sha256}")
    print(f"  created    {manifest.created.isoformat()}  completed {manifest.completed.isoformat()}")
    if entry and entry.verified_at:
        outcome = "ok" if entry.verify_ok else safe(entry.verify_detail or "")
        print(f"  verified   {entry.verified_at.isoformat()}: {outcome}")
    for component in manifest.components:
        print(f"  component  {component.kind:<8} {component.name}")
    for warning in manifest.warnings:
        print(f"  warning    {warning}")
    return 0


def _find(app: App, backup_id: str):
    from clouds.backups import BackupNotFound
    try:
        return app.backups.find(backup_id)
    except BackupNotFound as exc:
        raise CommandError(f"{exc}; `doppel backup list` shows the backups") from None


def cmd_restore(args) -> int:
    app = App.load(args.config)
    app.backups.progress = LiveProgress.factory()
    data = {"backup_id": args.backup_id, "env": args.env}
    if args.production:
        data["production"] = args.production
    _, failure = _request(app, build_event("restore.requested", data), args.timeout,
                          check=lambda: _find(app, args.backup_id))
    if failure:
        print(f"restore of {args.backup_id} into {args.env} failed: {failure}", file=sys.stderr)
        return 1
    print(f"restored {args.backup_id} into {args.env}")
    return 0


def cmd_verify(args) -> int:
    app = App.load(args.config)
    app.backups.progress = LiveProgress.factory()
    try:
        _find(app, args.backup_id)
        result = app.backups.verify(args.backup_id)
    finally:
        app.close()
    print(file=sys.stderr)
    if not result.ok:
        print(f"verification FAILED: {safe(str(result))}", file=sys.stderr)
        return 1
    print(f"{result} in {result.seconds:.1f} s")
    return 0


def cmd_sync(args) -> int:
    app = App.load(args.config)
    try:
        count = app.backups.sync()
    finally:
        app.close()
    print(f"catalogue holds {count} backup(s) from {app.backups.store.name}")
    return 0


def cmd_prune(args) -> int:
    app = App.load(args.config)
    try:
        result = app.backups.prune(args.env, dry_run=args.dry_run)
    finally:
        app.close()
    verb = "would delete" if args.dry_run else "deleted"
    for manifest in result.removed:
        print(f"{verb} {manifest.backup_id}")
    print(f"{len(result.removed)} {verb}, {len(result.kept)} kept (policy {app.backups.retention})", file=sys.stderr)
    return 0
