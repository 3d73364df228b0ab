"""`doppel env create|list|show|wait|delete|expire|logs|prune-logs`: environments from the command line."""
from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timezone

from doppel.cli import env_logs
from doppel.cli.common import CommandError, build_event, duration, env_name
from doppel.cli.output import add_output, cell, dump, emit, iso, when

EXAMPLES = {
    "env": ["doppel env create perf-test --from shop --ttl 8h", "doppel env list", "doppel env show perf-test"],
    "env create": ["doppel env create perf-test --from shop --ttl 8h --owner alice",
                   "doppel env create bugfix-42 --from shop --data-version 20250301T020000Z-1a2b  # from a backup",
                   "doppel env create nightly --from shop --no-wait   # with a worker on RabbitMQ"],
    "env list": ["doppel env list", "doppel env list --all -o json"],
    "env show": ["doppel env show perf-test", "doppel env show perf-test -o yaml"],
    "env wait": ["doppel env wait perf-test --state ready --timeout 30m",
                 "doppel env wait perf-test --state deleted"],
    "env delete": ["doppel env delete perf-test", "doppel env delete perf-test --no-wait"],
    "env expire": ["doppel env expire perf-test"],
    **env_logs.EXAMPLES,
}
STATES = ("requested", "snapshotting", "cloning", "configuring", "ready", "expiring", "deleted", "failed")


def register(sub) -> None:
    p = sub.add_parser("env", help="environments: create, list, show, wait, delete, expire, logs")
    env = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    q = env.add_parser("create", help="clone a production into a new environment",
                       description="Snapshot the production (or take one of its backups), build the environment, "
                                   "rewrite its configuration, and print its endpoints when ready. Its TTL fires "
                                   "only while a scheduler runs (`doppel scheduler`, or `doppel run`).")
    q.add_argument("name", help="the environment's name: lower-case letters, digits and '-' (e.g. perf-test)")
    q.add_argument("--from", dest="production", required=True, help="the production to clone (from doppel.yaml)")
    q.add_argument("--ttl", help="delete it after this long, backup first; a unit is needed (e.g. 8h, 2d)")
    q.add_argument("--data-version", default="latest",
                   help="'latest' (a fresh snapshot) or a backup id (`doppel backup list PROD` shows them)")
    q.add_argument("--owner", help="who it is for (shown in `env list`)")
    q.add_argument("--no-wait", action="store_true", help="print the request id and return at once")
    q.add_argument("--timeout", default="30m", help="how long to follow the chain (default 30m)")
    q.set_defaults(handler=cmd_create)

    q = env.add_parser("list", help="living environments (--all: deleted and failed too)")
    q.add_argument("--all", action="store_true", help="deleted and failed ones too")
    add_output(q)
    q.set_defaults(handler=cmd_list)

    q = env.add_parser("show", help="one environment: state, endpoints, expiry, history")
    q.add_argument("name")
    add_output(q)
    q.set_defaults(handler=cmd_show)

    q = env.add_parser("wait", help="wait until an environment reaches a state (exit 1 if it failed instead)")
    q.add_argument("name")
    q.add_argument("--state", default="ready", choices=STATES, help="the state to wait for (default ready)")
    q.add_argument("--timeout", default="30m", help="how long to wait (default 30m); exit 3 when it runs out")
    q.set_defaults(handler=cmd_wait)

    for action, helptext in (("delete", "back it up, then delete it"),
                             ("expire", "expire it now as its TTL would: back up, then delete")):
        q = env.add_parser(action, help=helptext)
        q.add_argument("name")
        q.add_argument("--no-wait", action="store_true", help="print the request id and return at once")
        q.add_argument("--timeout", default="30m", help="how long to follow it (default 30m)")
        q.set_defaults(handler=cmd_delete, reason="manual" if action == "delete" else "ttl")

    env_logs.register(env)


def follow(app, find, done_states, timeout: float, out=None, already: int = 0):
    """Print each state the environment passes through until it reaches one of `done_states`, on `out` (default:
    sys.stderr as it is when called, not as it was when this module was imported).

    `already`: how many of its transitions happened before this command (not shown again).
    """
    from doppel.app import safe
    out = out or sys.stderr
    shown = already
    started = time.monotonic()
    env = None
    while time.monotonic() - started < timeout:
        env = find()
        if env is not None:
            for transition in app.registry.transitions(env)[shown:]:
                note = f"  ({safe(transition.reason)})" if transition.reason else ""
                print(f"  {time.monotonic() - started:6.1f} s  {transition.to_state}{note}", file=out, flush=True)
                shown += 1
            if env.state in done_states:
                return env
        time.sleep(0.1)
    raise CommandError(f"still {env.state if env else 'not registered'} after {timeout:.0f} s; "
                       f"`doppel env wait {env.name if env else 'NAME'}` follows it further", 3)


def serve_embedded(app) -> None:
    """On the embedded bus, this process is the worker too."""
    from doppel.roles import functions_named
    if app.embedded:
        app.worker(functions_named()).start()
        app.broker.start()


def load_app(args):
    from doppel.app import App
    return App.load(args.config)


def _ttl_seconds(text: str, max_ttl: float) -> int:
    """--ttl in whole seconds (rounded up); an error naming the limit when it is longer than max_ttl."""
    from schemas.config import ttl_refusal
    seconds = duration(text, "--ttl")
    refusal = ttl_refusal(seconds, max_ttl)
    if refusal:
        raise CommandError(f"--ttl {text}: {refusal}", 2)
    return math.ceil(seconds)


def cmd_create(args) -> int:
    from core.broker import event_message
    from core.chain import request_id
    from core.registry import FAILED, READY
    from schemas.config import ttl_limits
    env_name(args.name)
    timeout = duration(args.timeout, "--timeout")
    if args.ttl:
        duration(args.ttl, "--ttl")
    data = {"env": args.name, "production": args.production, "data_version": args.data_version}
    if args.owner:
        data["owner"] = args.owner
    build_event("env.requested", data)  # refuses a bad name or owner before anything is loaded
    app = load_app(args)
    try:
        if args.production not in app.config["productions"]:
            known = ", ".join(sorted(app.config["productions"])) or "none yet"
            raise CommandError(f"no production {args.production!r} in {app.config.where} (known: {known}); "
                               "describe it under productions:, or pass --config", 2)
        if args.ttl:
            data["ttl_seconds"] = _ttl_seconds(args.ttl, ttl_limits(app.config["environments"], args.production)[1])
        taken = app.registry.living(args.name)
        if taken is not None:
            raise CommandError(f"environment {args.name} already exists ({taken.state} since "
                               f"{when(taken.updated_at)}, from {taken.production}); `doppel env delete "
                               f"{args.name}` first, or choose another name", 2)
        if args.data_version != "latest":
            event = _from_backup(app, data)
        else:
            event = build_event("env.requested", data)
        if app.embedded and args.no_wait:
            raise CommandError("--no-wait needs a running worker: set DOPPEL_AMQP_URL (the embedded bus "
                               "lives only as long as this command)", 2)
        if event.type == "restore.requested":
            from doppel.cli.progress import show_progress
            show_progress(app)
        serve_embedded(app)
        app.broker.publish([event_message(event)])
        if args.no_wait:
            print(event.id)
            return 0
        print(f"creating {args.name} from {args.production} (request {event.id})", file=sys.stderr)
        env = follow(app, lambda: _ours_or_refused(app, args.name, request_id(event)), (READY, FAILED), timeout)
        return report(env)
    finally:
        app.close()


def _from_backup(app, data: dict):
    """The restore.requested that makes the environment from a backup, when that backup exists."""
    backup_id = data.pop("data_version")
    entry = app.catalogue.get(backup_id)
    if entry is None or entry.deleted_at is not None:
        raise CommandError(f"--data-version {backup_id!r}: no such backup in the catalogue; 'latest' takes a fresh "
                           f"snapshot, `doppel backup list {data['production']}` shows the backups", 2)
    return build_event("restore.requested", {"backup_id": backup_id, **data})


def _ours_or_refused(app, name: str, request: str):
    """Our request's environment; an error when another request took the name meanwhile."""
    env = app.registry.by_request(request)
    if env is None:
        other = app.registry.living(name)
        if other is not None and other.request_id != request:
            raise CommandError(f"environment {name} was requested by someone else just before "
                               f"({other.request_id}); this request made nothing", 1)
    return env


def report(env) -> int:
    from doppel.app import safe
    if env.state == "failed":
        print(f"{env.name} failed: {safe(env.reason or 'no reason recorded')}", file=sys.stderr)
        return 1
    print(f"{env.name} is {env.state}" + (f", expires {when(env.expires_at)}" if env.expires_at else ""))
    for key, value in sorted(env.endpoints.items()):
        print(f"  {key}: {value}")
    return 0


LIST_COLUMNS = (("name", "NAME", 40), ("state", "STATE", 17), ("production", "FROM", 40), ("owner", "OWNER", 24),
                ("expires", "EXPIRES", 24), ("created", "CREATED", 24))


def view(env, now: datetime | None = None) -> dict:
    """An environment as the CLI shows it; `overdue` when its TTL passed and it still stands."""
    now = now or datetime.now(timezone.utc)
    overdue = env.state == "ready" and env.expires_at is not None and env.expires_at <= now
    return {"name": env.name, "state": env.state + (" (overdue)" if overdue else ""), "production": env.production,
            "owner": env.owner, "data_version": env.data_version or "latest", "ttl_seconds": env.ttl_seconds,
            "expires": env.expires_at, "overdue": overdue, "created": env.created_at, "request": env.request_id,
            "reason": env.reason, "endpoints": env.endpoints}


def cmd_list(args) -> int:
    app = load_app(args)
    try:
        envs = app.registry.all(include_ended=args.all)
    finally:
        app.close()
    rows = [view(env) for env in envs]
    if args.output != "table":
        for row in rows:
            row["state"] = row["state"].split()[0]
    emit(rows, LIST_COLUMNS, args.output,
         empty="no environments" + ("" if args.all else " living (--all shows deleted and failed ones)"))
    return 0


def cmd_show(args) -> int:
    from doppel.app import safe
    app = load_app(args)
    try:
        env = app.registry.latest(args.name)
        if env is None:
            raise CommandError(f"no environment {args.name!r} was ever requested; `doppel env list --all` shows them")
        history = app.registry.transitions(env)
        lateness = _lateness(app, env) if env.state == "ready" else None
        kept = None if env.living else app.logs.logbook.of_request(env.request_id)
    finally:
        app.close()
    shown = view(env)
    if args.output != "table":
        shown["state"] = env.state
        shown["overdue_because"] = lateness
        shown["reason"] = safe(env.reason) if env.reason else None
        shown["history"] = [{"at": t.at, "from": t.from_state, "to": t.to_state, "reason": safe(t.reason or "")}
                            for t in history]
        shown["logs"] = {"kept_until": kept.kept_until, "size": kept.size, "files": kept.files,
                         "span": {"from": kept.span_from, "to": kept.span_to}, "store": kept.store} if kept else None
        dump(shown, args.output)
        return 0
    print(f"{env.name}: {shown['state']}")
    print(f"  from        {env.production} (data {shown['data_version']})")
    print(f"  owner       {cell(env.owner, 200)}")
    print(f"  requested   {when(env.created_at)} as {env.request_id}")
    print(f"  expires     {when(env.expires_at)}")
    if lateness:
        print(f"  OVERDUE     {lateness}")
    if env.reason:
        print(f"  reason      {safe(env.reason)}")
    for key, value in sorted(env.endpoints.items()):
        print(f"  endpoint    {key}: {value}")
    if kept is not None:
        print(f"  logs        kept until {when(kept.kept_until)} ({kept.files} file(s), {kept.size} bytes; "
              f"`doppel env logs {env.name}`)")
    elif not env.living:
        print("  logs        none kept")
    print("  history")
    for t in history:
        print(f"    {when(t.at)}  {t.from_state or '':<12} -> {t.to_state:<12} {safe(t.reason or '')}")
    return 0


def _lateness(app, env) -> str | None:
    """Why an environment past its TTL still stands: TTLs fire only while a scheduler holds the lease."""
    now = datetime.now(timezone.utc)
    if env.expires_at is None or env.expires_at > now:
        return None
    from scheduler.lease import read_lease
    late = _ago(now - env.expires_at)
    lease = read_lease(app.engine)
    if lease is None or lease.released or lease.expires_at < now.timestamp():
        return (f"its TTL ran out {late} ago and no scheduler is running to expire it; start one "
                f"(`doppel scheduler`, or `doppel run`), or `doppel env expire {env.name}` now")
    return (f"its TTL ran out {late} ago; the scheduler ({lease.holder}) has not expired it yet: "
            "see `doppel events --type env.expired` and `doppel dlq list`")


def _ago(delta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cmd_wait(args) -> int:
    timeout = duration(args.timeout, "--timeout")
    app = load_app(args)
    try:
        start = app.registry.latest(args.name)
        if start is None:
            raise CommandError(f"no environment {args.name!r} was ever requested; `doppel env list --all` shows them")
        done = {args.state, "failed", "deleted"}
        env = follow(app, lambda: app.registry.latest(args.name), done, timeout,
                     already=len(app.registry.transitions(start)))
    finally:
        app.close()
    if env.state == args.state:
        print(f"{env.name} is {env.state}" + (f" ({iso(env.updated_at)})" if env.updated_at else ""))
        return 0
    print(f"{env.name} is {env.state}, not {args.state}" + (f": {env.reason}" if env.reason else ""), file=sys.stderr)
    return 1


def cmd_delete(args) -> int:
    from core.broker import event_message
    from core.registry import DELETED, FAILED
    from doppel.app import safe
    timeout = duration(args.timeout, "--timeout")
    app = load_app(args)
    try:
        env = app.registry.living(args.name)
        if env is None:
            raise CommandError(f"no living environment {args.name!r}; `doppel env list` shows them")
        event = build_event("env.expired", {"env": env.name, "reason": args.reason})
        before = len(app.registry.transitions(env))
        if app.embedded and args.no_wait:
            raise CommandError("--no-wait needs a running worker: set DOPPEL_AMQP_URL", 2)
        serve_embedded(app)
        app.broker.publish([event_message(event)])
        if args.no_wait:
            print(event.id)
            return 0
        print(f"backing up, then deleting {env.name}", file=sys.stderr)
        env = follow(app, lambda: app.registry.get(env.id), (DELETED, FAILED), timeout, already=before)
        print(f"{env.name} is {env.state}" + (f": {safe(env.reason)}" if env.reason else ""))
        return 0 if env.state == DELETED else 1
    finally:
        app.close()
