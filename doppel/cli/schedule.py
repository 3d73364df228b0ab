"""`doppel scheduler` (the role) and `doppel schedule list|pause|resume|run-now` (its controls)."""
from __future__ import annotations

import sys
from datetime import datetime, timezone

from doppel import roles
from doppel.cli.common import CommandError
from doppel.cli.output import add_output, emit

SELECTOR_HELP = "a job id, tag:NAME, type:EVENT_TYPE or production:NAME"
EXAMPLES = {
    "scheduler": ["DOPPEL_AMQP_URL=amqp://doppel:PASS@mq:5672/doppel doppel scheduler"],
    "schedule": ["doppel schedule list", "doppel schedule pause tag:backup --reason 'storage migration'"],
    "schedule list": ["doppel schedule list", "doppel schedule list -o json"],
    "schedule pause": ["doppel schedule pause nightly-backup", "doppel schedule pause production:shop --reason freeze"],
    "schedule resume": ["doppel schedule resume nightly-backup", "doppel schedule resume production:shop"],
    "schedule run-now": ["doppel schedule run-now nightly-backup", "doppel schedule run-now nightly-backup --force"],
}


def register(sub) -> None:
    p = sub.add_parser("scheduler", help="run the scheduler: emit timed events (one active across replicas)",
                       description="Emit the timed events of `schedules:` and environment TTLs. Run as many "
                                   "as you like: one holds the lease and fires, the others stand by.")
    p.set_defaults(handler=cmd_scheduler)

    p = sub.add_parser("schedule", help="timed jobs: list, pause, resume, run-now")
    actions = p.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    q = actions.add_parser("list", help="every job, its next run and whether it is paused; the active scheduler")
    add_output(q)
    q.set_defaults(handler=cmd_list)
    q = actions.add_parser("pause", help="stop jobs from firing until resumed")
    q.add_argument("selector", metavar="JOB", help=SELECTOR_HELP)
    q.add_argument("--reason", default="paused from the command line", help="shown by `doppel schedule list`")
    q.set_defaults(handler=cmd_pause)
    q = actions.add_parser("resume", help="lift a pause; jobs fire again at their next scheduled time, "
                                          "missed runs are not fired (use run-now)")
    q.add_argument("selector", metavar="JOB", help=SELECTOR_HELP + " (as it was paused)")
    q.set_defaults(handler=cmd_resume)
    q = actions.add_parser("run-now", help="emit a job's event now, once")
    q.add_argument("job", metavar="JOB", help="a configured job id")
    q.add_argument("--force", action="store_true", help="even while the job is paused")
    q.set_defaults(handler=cmd_run_now)


def _control(app):
    from scheduler.control import Scheduler
    return Scheduler(app.engine, app.config["schedules"])


def _app(args, role: str = "cli"):
    from doppel.app import App
    return App.load(args.config, role=role)


def cmd_scheduler(args) -> int:
    roles.quiet_pika(args.verbose)  # the role says when it takes and loses the lease
    roles.run_scheduler(_app(args, "scheduler"))
    return 0


JOB_COLUMNS = (("job", "JOB", 32), ("type", "TYPE", 14), ("when", "WHEN", 40), ("next_run", "NEXT RUN", 24),
               ("state", "STATE", 60))


def cmd_list(args) -> int:
    from scheduler.lease import read_lease
    app = _app(args)
    try:
        control = _control(app)
        views = control.jobs()
        lease = read_lease(app.engine)
    finally:
        app.close()
    rows = [{"job": view.spec.id, "type": view.spec.type, "when": view.spec.describe(), "tags": list(view.spec.tags),
             "data": view.spec.data, "next_run": view.next_run,
             "paused": view.pause.describe() if view.pause else None,
             "state": f"paused: {view.pause.describe()}" if view.pause else "active"} for view in views]
    emit(rows, JOB_COLUMNS, args.output, empty="no jobs: add some under `schedules:` in doppel.yaml")
    if args.output == "table":
        print(_lease_line(lease), file=sys.stderr)
    return 0


def _lease_line(lease) -> str:
    now = datetime.now(timezone.utc).timestamp()
    if lease is None:
        return "no scheduler has run yet: start one with `doppel scheduler`"
    if lease.released or lease.expires_at < now:
        return f"no active scheduler (last: {lease.holder}); start one with `doppel scheduler`"
    return f"active scheduler: {lease.holder} (lease renewed {now - lease.renewed_at:.1f} s ago)"


def cmd_pause(args) -> int:
    from scheduler.selectors import SelectorError, describe
    app = _app(args)
    try:
        control = _control(app)
        if ":" not in args.selector and control.job(args.selector) is None:
            known = ", ".join(s.id for s in control.config_jobs()) or "none (add some under schedules:)"
            raise CommandError(f"no job {args.selector!r} to pause; jobs: {known}; JOB is {SELECTOR_HELP}", 2)
        try:
            pause = control.pause(args.selector, reason=args.reason)
        except SelectorError as exc:
            raise CommandError(f"{exc}; JOB is {SELECTOR_HELP}", 2) from None
        covered = [v.spec.id for v in control.jobs() if v.pause and v.pause.id == pause.id]
    finally:
        app.close()
    print(f"paused {describe(pause.selector)}: {', '.join(covered) or 'no job matches it yet'}")
    return 0


def cmd_resume(args) -> int:
    from scheduler.selectors import SelectorError, describe
    app = _app(args)
    try:
        control = _control(app)
        try:
            lifted = control.resume(args.selector)
        except SelectorError as exc:
            raise CommandError(f"{exc}; JOB is {SELECTOR_HELP}", 2) from None
        still = [(v.spec.id, v.pause) for v in control.jobs() if v.pause]
    finally:
        app.close()
    if not lifted:
        held = "; ".join(f"{describe(p.selector)} ({p.reason})" for p in {p.id: p for _, p in still}.values())
        raise CommandError(f"nothing was paused as {args.selector!r}" + (f"; pauses in force: {held}" if held else ""))
    print(f"resumed {describe(lifted[0].selector)}; jobs fire again at their next scheduled time")
    for job_id, pause in still:
        print(f"  {job_id} stays paused by another pause: {pause.describe()}", file=sys.stderr)
    return 0


def cmd_run_now(args) -> int:
    from doppel.cli.bus import publish_and_settle
    from scheduler.firing import schedule_event
    from scheduler.jobs import EXPIRY
    app = _app(args)
    try:
        control = _control(app)
        spec = control.job(args.job)
        if spec is None or spec.kind == EXPIRY:
            known = ", ".join(s.id for s in control.config_jobs()) or "none"
            raise CommandError(f"no configured job {args.job!r}; configured jobs: {known}", 2)
        now = datetime.now(timezone.utc)
        pause = control.pause_covering(spec, now.timestamp(), now.timestamp())
        if pause is not None and not args.force:
            raise CommandError(f"{spec.id} is paused: {pause.describe()}; resume it first, or add --force")
        event = schedule_event(spec, now, now, source="doppel/cli")
        publish_and_settle(app, event)
    finally:
        app.close()
    print(event.id)
    return 0
