"""`doppel dr status|failover|failback|drill|report`: disaster recovery from the command line.

failover and failback change where production's name points, so they ask first;
`--yes` answers for scripts, and without a terminal (cron, CI) they refuse unless
it is given. With the embedded bus the chain runs before the command returns and
its outcome is printed; with RabbitMQ the event is published and the workers act.
"""
from __future__ import annotations

import sys

from doppel.cli.common import CommandError
from doppel.cli.output import add_output, dump, emit

EXAMPLES = {
    "dr": ["doppel dr status", "doppel dr drill shop", "doppel dr report shop -o json"],
    "dr status": ["doppel dr status", "doppel dr status -o json"],
    "dr failover": ["doppel dr failover shop --dry-run   # every step it would take; changes nothing",
                    "doppel dr failover shop", "doppel dr failover shop --yes   # from a script"],
    "dr failback": ["doppel dr failback shop"],
    "dr drill": ["doppel dr drill shop", "doppel dr drill shop -o json"],
    "dr report": ["doppel dr report", "doppel dr report shop -o yaml"],
}

OUTCOMES = {"failover.confirmed": ("failover.done", "failover.failed"),
            "failback.requested": ("failback.done", "failback.failed"),
            "drill.due": ("drill.done", "drill.failed")}


def register(sub) -> None:
    p = sub.add_parser("dr", help="disaster recovery: status, failover, failback, drill, report",
                       description="Fail production over to its DR copy and back, and prove backups restore "
                                   "(docs/dr.md).")
    actions = p.add_subparsers(dest="dr_command", metavar="ACTION", required=True)
    q = actions.add_parser("status", help="each production's DR state, the backup its DR copy holds, its names")
    add_output(q)
    q.set_defaults(handler=cmd_status)
    for name, helptext in (("failover", "fail PRODUCTION over to its DR copy now (asks first)"),
                           ("failback", "bring PRODUCTION home with what the DR copy took meanwhile (asks first)")):
        q = actions.add_parser(name, help=helptext)
        q.add_argument("production")
        q.add_argument("--yes", "-y", action="store_true", help="do not ask (needed without a terminal)")
        if name == "failover":
            q.add_argument("--dry-run", action="store_true",
                           help="print every step the failover would take (backup, DR copy, DNS from -> to) "
                                "and change nothing")
        add_output(q)
        q.set_defaults(handler=cmd_failover if name == "failover" else cmd_failback)
    q = actions.add_parser("drill", help="restore PRODUCTION's newest backup into a scratch copy, verify, delete")
    q.add_argument("production")
    add_output(q)
    q.set_defaults(handler=cmd_drill)
    q = actions.add_parser("report", help="the history of drills: backup, verified, RPO, RTO")
    q.add_argument("production", nargs="?")
    add_output(q)
    q.set_defaults(handler=cmd_report)


def _policy(app, production: str) -> dict:
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


def _publish(app, event_type: str, production: str, fmt: str = "table") -> int:
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
    if fmt != "table":
        dump({"outcome": outcome.type, **outcome.data}, fmt)
    else:
        print(f"{outcome.type}: {production}")
        for key, value in sorted(outcome.data.items()):
            print(f"  {key:<16} {'-' if value is None else value}")
    return 1 if outcome.type.endswith(".failed") else 0


def _app(args):
    from doppel.app import App
    return App.load(args.config)


def _run(args, event_type: str, question: str | None) -> int:
    app = _app(args)
    try:
        _policy(app, args.production) if event_type != "drill.due" else None
        if question and not confirm(question, getattr(args, "yes", False)):
            print("nothing done", file=sys.stderr)
            return 1
        return _publish(app, event_type, args.production, args.output)
    finally:
        app.close()


def cmd_failover(args) -> int:
    if args.dry_run:
        return _dry_run(args)
    return _run(args, "failover.confirmed", f"fail production {args.production} over to its DR copy, "
                                            "and point its names there?")


def _dry_run(args) -> int:
    from core.dr_cloud import failover_plan  # core.dr's, with a cloud target's stack, images and databases
    app = _app(args)
    try:
        plan = failover_plan(app.deps, args.production, _policy(app, args.production))
    finally:
        app.close()
    if args.output != "table":
        dump(plan, args.output)
    else:
        print(f"a failover of {args.production} would (nothing is changed now):")
        for number, step in enumerate(plan, 1):
            print(f"  {number}. {step['step']:<8} {step['action']:<8} {step['detail']}")
    return 1 if plan[-1]["action"] == "fails" else 0


def cmd_failback(args) -> int:
    return _run(args, "failback.requested", f"copy {args.production}'s DR data back into production, "
                                            "and point its names home?")


def cmd_drill(args) -> int:
    return _run(args, "drill.due", None)


STATUS_COLUMNS = (("production", "PRODUCTION", 40), ("state", "STATE", 14), ("since", "SINCE", 24),
                  ("dr_env", "DR COPY", 40), ("dr_copy_backup", "DR COPY HOLDS", 40),
                  ("serving_backup", "SERVING", 40), ("detail", "DETAIL", 80))


def cmd_status(args) -> int:
    app = _app(args)
    try:
        rows = {row.production: row for row in app.dr_states.all()}
        views = []
        for production in sorted(app.config["dr"]):
            row = rows.get(production) or app.dr_states.get(production)
            views.append({"production": production, "state": row.state, "since": row.since,
                          "dr_env": app.config["dr"][production]["target"]["env"], "serving_backup": row.backup_id,
                          "dr_copy_backup": row.dr_backup_id, "alarm": row.alarm_id,
                          "dns_switched": row.dns_switched, "detail": row.detail})
    finally:
        app.close()
    emit(views, STATUS_COLUMNS, args.output, empty="no DR policy in doppel.yaml (add a dr: section, docs/dr.md)")
    return 0


REPORT_COLUMNS = (("at", "WHEN", 24), ("production", "PRODUCTION", 30), ("backup_id", "BACKUP", 40),
                  ("verified", "VERIFIED", 8), ("rpo_seconds", "RPO S", 9), ("rto_seconds", "RTO S", 9))


def cmd_report(args) -> int:
    app = _app(args)
    try:
        drills = app.dr_states.drills(args.production)
    finally:
        app.close()
    rows = [{"production": d.production, "backup_id": d.backup_id, "at": d.at, "verified": d.verified,
             "rpo_seconds": d.rpo_seconds, "rto_seconds": d.rto_seconds, "detail": d.detail} for d in drills]
    if args.output == "table":
        for row in rows:
            row["verified"] = "yes" if row["verified"] else "NO"
            row["rpo_seconds"] = f"{row['rpo_seconds'] or 0:.0f}"
            row["rto_seconds"] = f"{row['rto_seconds'] or 0:.2f}"
    emit(rows, REPORT_COLUMNS, args.output,
         empty="no drill yet: `doppel dr drill PRODUCTION`, or schedule drill.due (docs/dr.md)")
    return 0
