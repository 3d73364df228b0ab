"""`doppel env logs|prune-logs`: what an environment logged, live while it runs and from the store after it is
deleted, with the secrets Doppel generated for it masked; and the pruning of kept logs past their retention."""
from __future__ import annotations

import re
import sys
import time
from datetime import datetime, timedelta, timezone

from doppel.cli.common import CommandError, duration, env_name

EXAMPLES = {
    "env logs": ["doppel env logs perf-test", "doppel env logs perf-test --grep 'ERROR|Traceback' --since 2h",
                 "doppel env logs perf-test -f", "doppel env logs perf-test --request 7f3c2a  # an earlier one"],
    "env prune-logs": ["doppel env prune-logs --dry-run", "doppel env prune-logs"],
}
FOLLOW_EVERY_S = 1.0


def register(env) -> None:
    q = env.add_parser("logs", help="what an environment logged: live while it runs, kept after it is deleted",
                       description="Print the lines of the files its production's logs components name (and, on "
                                   "OpenStack, its servers' console logs): read from the environment while it "
                                   "lives, from the backup store after it is deleted (for logs.retention). Secrets "
                                   "Doppel generated for it are printed masked.")
    q.add_argument("name", help="the environment's name")
    q.add_argument("--request", help="an earlier environment of that name: its request id (or the end of it)")
    q.add_argument("--since", help="lines from this long ago (2h, 30m) or this time (2026-12-02T18:00:00Z) on")
    q.add_argument("--grep", metavar="PATTERN", help="only the lines this regular expression finds (exit 1: none)")
    q.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new lines until the environment is deleted (Ctrl-C stops)")
    q.set_defaults(handler=cmd_logs)

    q = env.add_parser("prune-logs", help="delete kept logs whose retention (logs.retention) ran out")
    q.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    q.set_defaults(handler=cmd_prune_logs)


def _load_app(args):
    from doppel.app import App
    return App.load(args.config)


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    if re.match(r"^\d{4}-\d{2}-\d{2}", text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(f"--since {text!r} is not a time; write e.g. 2026-12-02T18:00:00Z or 2h", 2) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - timedelta(seconds=duration(text, "--since"))


def _pattern(text: str | None):
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise CommandError(f"--grep {text!r} is not a regular expression: {exc}", 2) from None


def _target(app, name: str, request: str | None):
    """The environment whose logs are asked for: by request, else the living one, else the newest of that name."""
    if request:
        found = app.registry.by_request(request) or next(
            (e for e in reversed(app.registry.all(include_ended=True))
             if e.name == name and e.request_id.rsplit("/", 1)[-1].startswith(request)), None)
        if found is None or found.name != name:
            raise CommandError(f"no request {request!r} made an environment {name}; `doppel env show {name}` "
                               "shows the newest one's", 2)
        return found
    found = app.registry.living(name) or app.registry.latest(name)
    if found is None:
        raise CommandError(f"no environment {name!r} was ever requested; `doppel env list --all` shows them", 2)
    return found


def cmd_logs(args) -> int:
    from clouds.logs.reading import LineFilter
    env_name(args.name)
    line_filter = LineFilter(since=_since(args.since), grep=_pattern(args.grep))
    app = _load_app(args)
    try:
        env = _target(app, args.name, args.request)
        if env.living:
            print(f"logs of {env.name} ({env.state}), read from it now", file=sys.stderr)
            if args.follow:
                return _follow(app, env, line_filter)
            lines = app.logs.live_lines(env, app.cloud, line_filter)
        else:
            kept = app.logs.logbook.of_request(env.request_id)
            if kept is None:
                raise CommandError(f"no logs of {env.name} (request {env.request_id}, {env.state}) are kept: its "
                                   "production names no logs components, it logged nothing, or they were pruned", 1)
            print(f"logs of {env.name} ({env.state} {env.updated_at:%Y-%m-%d %H:%M} UTC), kept until "
                  f"{kept.kept_until:%Y-%m-%d %H:%M} UTC in {kept.store}", file=sys.stderr)
            lines = app.logs.kept_lines(kept, line_filter)
        printed = 0
        for line in lines:
            print(line)
            printed += 1
        return 1 if printed == 0 and line_filter.grep is not None else 0
    finally:
        app.close()


def _follow(app, env, line_filter) -> int:
    """Print what the living env logs as it logs it, until it is no longer living (or Ctrl-C)."""
    seen: dict[str, int] = {}
    while True:
        for line in app.logs.live_lines(env, app.cloud, line_filter, seen):
            print(line, flush=True)
        current = app.registry.get(env.id)
        if not current.living:
            print(f"{env.name} is {current.state}; `doppel env logs {env.name}` reads its kept logs", file=sys.stderr)
            return 0
        time.sleep(FOLLOW_EVERY_S)


def cmd_prune_logs(args) -> int:
    app = _load_app(args)
    try:
        due = app.logs.prune(dry_run=args.dry_run)
    finally:
        app.close()
    verb = "would delete" if args.dry_run else "deleted"
    for entry in due:
        print(f"{verb} logs of {entry.env} (request {entry.request_id}): {entry.size} bytes, {entry.files} file(s), "
              f"kept until {entry.kept_until:%Y-%m-%d %H:%M} UTC")
    print(f"{len(due)} kept log set(s) past their retention" + (" (nothing deleted: --dry-run)" if args.dry_run
                                                                 else " deleted"), file=sys.stderr)
    return 0
