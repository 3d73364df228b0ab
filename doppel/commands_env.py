"""`doppel env create|list|show|delete|expire`: environments from the command line."""
from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timezone

from doppel.app import App, safe
from doppel.chain import request_id
from doppel.cli import CommandError
from doppel.commands_bus import _functions, build_event
from doppel.registry import DELETED, FAILED, READY
from bus.worker import event_message
from schemas.config import ttl_refusal
from schemas.fields import parse_duration


def register(sub) -> None:
    p = sub.add_parser("env", help="environments: create, list, show, delete, expire")
    env = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    q = env.add_parser("create", help="clone a production into a new environment",
                       description="Snapshot the production, build the environment from the snapshot, "
                                   "rewrite its configuration, and print its endpoints when ready.")
    q.add_argument("name", help="the environment's name: lower-case letters, digits and '-' (e.g. perf-test)")
    q.add_argument("--from", dest="production", required=True, help="the production to clone (from doppel.yaml)")
    q.add_argument("--ttl", help="delete it after this long, backup first (e.g. 8h, 2d)")
    q.add_argument("--data-version", default="latest", help="'latest' (a fresh snapshot) or a backup id")
    q.add_argument("--owner", help="who it is for (shown in `env list`)")
    q.add_argument("--no-wait", action="store_true", help="print the request id and return at once")
    q.add_argument("--timeout", default="30m", help="how long to follow the chain (default 30m)")
    q.set_defaults(handler=cmd_create)

    q = env.add_parser("list", help="living environments (--all: deleted and failed too)")
    q.add_argument("--all", action="store_true")
    q.set_defaults(handler=cmd_list)

    q = env.add_parser("show", help="one environment: state, endpoints, history")
    q.add_argument("name")
    q.set_defaults(handler=cmd_show)

    for action, helptext in (("delete", "back it up, then delete it"),
                             ("expire", "expire it now as its TTL would: back up, then delete")):
        q = env.add_parser(action, help=helptext)
        q.add_argument("name")
        q.add_argument("--no-wait", action="store_true")
        q.add_argument("--timeout", default="30m")
        q.set_defaults(handler=cmd_delete, reason="manual" if action == "delete" else "ttl")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def follow(app: App, find, done_states, timeout: float, out=sys.stderr, already: int = 0):
    """Print each state the environment passes through until it reaches one of `done_states`.

    `already`: how many of its transitions happened before this command (not shown again).
    """
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
                       f"`doppel env show` follows it further", 3)


def serve_embedded(app: App) -> None:
    """On the embedded bus, this process is the worker too."""
    if app.embedded:
        app.worker(_functions()).start()
        app.broker.start()


def _ttl_seconds(text: str, max_ttl: float) -> int:
    """--ttl in whole seconds (rounded up); an error naming the limit when it is longer than max_ttl."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise CommandError(f"--ttl: {exc}", 2) from None
    refusal = ttl_refusal(seconds, max_ttl)
    if refusal:
        raise CommandError(f"--ttl {text}: {refusal}", 2)
    return math.ceil(seconds)


def cmd_create(args) -> int:
    data = {"env": args.name, "production": args.production, "data_version": args.data_version}
    if args.owner:
        data["owner"] = args.owner
    build_event("env.requested", data)  # refuses a bad name or owner before anything is loaded
    app = App.load(args.config)
    try:
        if args.ttl:
            data["ttl_seconds"] = _ttl_seconds(args.ttl, app.config["environments"]["max_ttl"])
        event = build_event("env.requested", data)
        if args.production not in app.config["productions"]:
            known = ", ".join(sorted(app.config["productions"])) or "none yet"
            raise CommandError(f"no production {args.production!r} in {app.config.path or 'the configuration'} "
                               f"(known: {known}); describe it under productions:", 2)
        taken = app.registry.living(args.name)
        if taken is not None:
            raise CommandError(f"environment {args.name} already exists ({taken.state} since "
                               f"{_when(taken.updated_at)}, from {taken.production}); `doppel env delete "
                               f"{args.name}` first, or choose another name", 2)
        if app.embedded and args.no_wait:
            raise CommandError("--no-wait needs a running worker: set DOPPEL_AMQP_URL (the embedded bus "
                               "lives only as long as this command)", 2)
        serve_embedded(app)
        app.broker.publish([event_message(event)])
        if args.no_wait:
            print(event.id)
            return 0
        print(f"creating {args.name} from {args.production} (request {event.id})", file=sys.stderr)
        env = follow(app, lambda: _ours_or_refused(app, args.name, request_id(event)), (READY, FAILED),
                     parse_duration(args.timeout))
        return _report(app, env)
    finally:
        app.close()


def _ours_or_refused(app: App, name: str, request: str):
    """Our request's environment; an error when another request took the name meanwhile."""
    env = app.registry.by_request(request)
    if env is None:
        other = app.registry.living(name)
        if other is not None and other.request_id != request:
            raise CommandError(f"environment {name} was requested by someone else just before "
                               f"({other.request_id}); this request made nothing", 1)
    return env


def _report(app: App, env) -> int:
    if env.state == FAILED:
        print(f"{env.name} failed: {safe(env.reason or 'no reason recorded')}", file=sys.stderr)
        return 1
    print(f"{env.name} is {env.state}" + (f", expires {_when(env.expires_at)}" if env.expires_at else ""))
    for key, value in sorted(env.endpoints.items()):
        print(f"  {key}: {value}")
    return 0


def cell(text: str | None, width: int) -> str:
    """`text` for one column of a table: one line of printable characters, at most `width` of them
    (an ellipsis marks a cut), so no field, however long or strange, can run over the table."""
    text = "".join(c if c.isprintable() else "?" for c in (text or "-")[:width + 1])
    return text if len(text) <= width else text[:width - 1] + "\u2026"


LIST_COLUMNS = (("NAME", 40), ("STATE", 13), ("FROM", 40), ("OWNER", 24), ("EXPIRES", 21), ("CREATED", 21))


def cmd_list(args) -> int:
    app = App.load(args.config)
    envs = app.registry.all(include_ended=args.all)
    if not envs:
        print("no environments" + ("" if args.all else " living (--all shows deleted and failed ones)"), file=sys.stderr)
    else:
        rows = [[cell(value, width) for value, (_, width) in zip(
            (env.name, env.state, env.production, env.owner, _when(env.expires_at), _when(env.created_at)),
            LIST_COLUMNS)] for env in envs]
        widths = [max(len(title), *(len(row[i]) for row in rows)) for i, (title, _) in enumerate(LIST_COLUMNS)]
        for row in [[title for title, _ in LIST_COLUMNS], *rows]:
            print(" ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    app.close()
    return 0


def cmd_show(args) -> int:
    app = App.load(args.config)
    env = app.registry.latest(args.name)
    if env is None:
        raise CommandError(f"no environment {args.name!r} was ever requested; `doppel env list --all` shows them")
    print(f"{env.name}: {env.state}")
    print(f"  from        {env.production} (data {env.data_version or 'latest'})")
    print(f"  owner       {cell(env.owner, 200)}")
    print(f"  requested   {_when(env.created_at)} as {env.request_id}")
    print(f"  expires     {_when(env.expires_at)}")
    if env.reason:
        print(f"  reason      {safe(env.reason)}")
    for key, value in sorted(env.endpoints.items()):
        print(f"  endpoint    {key}: {value}")
    print("  history")
    for t in app.registry.transitions(env):
        print(f"    {_when(t.at)}  {t.from_state or '':<12} -> {t.to_state:<12} {safe(t.reason or '')}")
    app.close()
    return 0


def cmd_delete(args) -> int:
    app = App.load(args.config)
    env = app.registry.living(args.name)
    if env is None:
        raise CommandError(f"no living environment {args.name!r}; `doppel env list` shows them")
    event = build_event("env.expired", {"env": env.name, "reason": args.reason})
    before = len(app.registry.transitions(env))
    try:
        if app.embedded and args.no_wait:
            raise CommandError("--no-wait needs a running worker: set DOPPEL_AMQP_URL", 2)
        serve_embedded(app)
        app.broker.publish([event_message(event)])
        if args.no_wait:
            print(event.id)
            return 0
        print(f"backing up, then deleting {env.name}", file=sys.stderr)
        env = follow(app, lambda: app.registry.get(env.id), (DELETED, FAILED), parse_duration(args.timeout),
                     already=before)
        print(f"{env.name} is {env.state}" + (f": {safe(env.reason)}" if env.reason else ""))
        return 0 if env.state == DELETED else 1
    finally:
        app.close()
