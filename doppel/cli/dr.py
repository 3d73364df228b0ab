"""`doppel dr status|failover|failback|drill|report`: disaster recovery from the command line.

failover and failback change where production's name points, so they ask first;
`--yes` answers for scripts, and without a terminal (cron, CI) they refuse unless
it is given. With the embedded bus the chain runs before the command returns and
its outcome is printed; with RabbitMQ the event is published and the workers act.
"""
from __future__ import annotations

import json
import sys

from doppel.app import App
from doppel.cli.common import CommandError

OUTCOMES = {"failover.confirmed": ("failover.done", "failover.failed"),
            "failback.requested": ("failback.done", "failback.failed"),
            "drill.due": ("drill.done", "drill.failed")}


def register(sub) -> None:
    p = sub.add_parser("dr", help="disaster recovery: status, failover, failback, drill, report",
                       description="Fail production over to its DR copy and back, and prove backups restore "
                                   "(docs/dr.md).")
    actions = p.add_subparsers(dest="dr_command", metavar="ACTION", required=True)
    q = actions.add_parser("status", help="each production's DR state, the backup its DR copy holds, its names")
    q.add_argument("--json", action="store_true", help="one JSON object per production")
    q.set_defaults(handler=cmd_status)
    for name, helptext in (("failover", "fail PRODUCTION over to its DR copy now (asks first)"),
                           ("failback", "bring PRODUCTION home with what the DR copy took meanwhile (asks first)")):
        q = actions.add_parser(name, help=helptext)
        q.add_argument("production")
        q.add_argument("--yes", "-y", action="store_true", help="do not ask (needed without a terminal)")
        q.set_defaults(handler=cmd_failover if name == "failover" else cmd_failback)
    q = actions.add_parser("drill", help="restore PRODUCTION's newest backup into a scratch copy, verify, delete")
    q.add_argument("production")
    q.set_defaults(handler=cmd_drill)
    q = actions.add_parser("report", help="the history of drills: backup, verified, RPO, RTO")
    q.add_argument("production", nargs="?")
    q.add_argument("--json", action="store_true", help="one JSON object per drill")
    q.set_defaults(handler=cmd_report)


def _policy(app: App, production: str) -> dict:
    policy = app.config["dr"].get(production)
    if policy is None:
        known = ", ".join(sorted(app.config["dr"])) or "none"
        raise CommandError(f"production {production!r} has no DR policy (policies: {known}); add dr.{production} "
                           "to doppel.yaml (docs/dr.md)", 2)
    return policy


def confirm(question: str, yes: bool) -> bool:
    """True when the person said yes (or --yes was given); refuses without a terminal to ask on."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError(f"{question.rstrip('?')}: there is no terminal to confirm on; add --yes to do it "
                           "without asking", 2)
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _publish(app: App, event_type: str, production: str) -> int:
    from doppel.cli.bus import publish_and_settle
    from doppel.cli.common import build_event
    event = build_event(event_type, {"production": production})
    publish_and_settle(app, event)
    if not app.embedded:
        print(f"published {event_type} {event.id}; follow it with `doppel events --correlation {event.id}`")
        return 0
    outcomes = [r for r in app.audit.events(correlation_id=event.id) if r.type in OUTCOMES[event_type]]
    if not outcomes:
        print(f"{event_type} for {production}: nothing to do (see `doppel dr status`)")
        return 0
    outcome = outcomes[-1]
    print(f"{outcome.type}: {json.dumps(outcome.data, sort_keys=True)}")
    return 1 if outcome.type.endswith(".failed") else 0


def _run(args, event_type: str, question: str | None) -> int:
    app = App.load(args.config)
    try:
        _policy(app, args.production) if event_type != "drill.due" else None
        if question and not confirm(question, getattr(args, "yes", False)):
            print("nothing done", file=sys.stderr)
            return 1
        return _publish(app, event_type, args.production)
    finally:
        app.close()


def cmd_failover(args) -> int:
    return _run(args, "failover.confirmed", f"fail production {args.production} over to its DR copy, "
                                            "and point its names there?")


def cmd_failback(args) -> int:
    return _run(args, "failback.requested", f"copy {args.production}'s DR data back into production, "
                                            "and point its names home?")


def cmd_drill(args) -> int:
    return _run(args, "drill.due", None)


def cmd_status(args) -> int:
    app = App.load(args.config)
    try:
        rows = {row.production: row for row in app.dr_states.all()}
        for production in sorted(app.config["dr"]):
            row = rows.get(production) or app.dr_states.get(production)
            view = {"production": production, "state": row.state, "since": row.since.isoformat(),
                    "dr_env": app.config["dr"][production]["target"]["env"], "serving_backup": row.backup_id,
                    "dr_copy_backup": row.dr_backup_id, "alarm": row.alarm_id, "dns_switched": row.dns_switched,
                    "detail": row.detail}
            if args.json:
                print(json.dumps(view, sort_keys=True))
            else:
                print(f"{production}: {row.state} since {view['since']}; DR copy {view['dr_env']} holds "
                      f"{row.dr_backup_id or 'nothing yet'}"
                      + (f"; serving {row.backup_id}" if row.backup_id else "")
                      + (f"; alarm {row.alarm_id}" if row.alarm_id else "")
                      + (f"; {row.detail}" if row.detail else ""))
        if not app.config["dr"]:
            print("no DR policy in doppel.yaml (add a dr: section, docs/dr.md)", file=sys.stderr)
    finally:
        app.close()
    return 0


def cmd_report(args) -> int:
    app = App.load(args.config)
    try:
        drills = app.dr_states.drills(args.production)
    finally:
        app.close()
    if not args.json:
        print(f"{'when (UTC)':20} {'production':12} {'backup':28} {'verified':8} {'RPO s':>9} {'RTO s':>8}")
    for d in drills:
        if args.json:
            print(json.dumps({"production": d.production, "backup_id": d.backup_id, "at": d.at.isoformat(),
                              "verified": d.verified, "rpo_seconds": d.rpo_seconds, "rto_seconds": d.rto_seconds,
                              "detail": d.detail}, sort_keys=True))
        else:
            print(f"{d.at:%Y-%m-%d %H:%M:%S} {d.production:12} {d.backup_id:28} {'yes' if d.verified else 'NO':8} "
                  f"{d.rpo_seconds or 0:9.0f} {d.rto_seconds or 0:8.2f}")
    if not drills and not args.json:
        print("no drill yet: `doppel dr drill PRODUCTION`, or schedule drill.due (docs/dr.md)", file=sys.stderr)
    return 0
