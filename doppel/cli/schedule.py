"""`doppel scheduler` (the role) and `doppel schedule list|pause|resume|run-now` (its controls)."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from doppel import roles
from doppel.app import App
from doppel.cli.common import CommandError
from scheduler.control import Scheduler
from scheduler.jobs import EXPIRY
from scheduler.lease import read_lease
from scheduler.selectors import SelectorError, describe

SELECTOR_HELP = "a job id, tag:NAME, type:EVENT_TYPE or production:NAME"


def register(sub) -> None:
    p = sub.add_parser("scheduler", help="run the scheduler: emit timed events (one active across replicas)",
                       description="Emit the timed events of `schedules:` and environment TTLs. Run as many "
                                   "as you like: one holds the lease and fires, the others stand by.")
    p.set_defaults(handler=cmd_scheduler)

    p = sub.add_parser("schedule", help="timed jobs: list, pause, resume, run-now")
    actions = p.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    q = actions.add_parser("list", help="every job, its next run and whether it is paused; the active scheduler")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
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


def _control(app: App) -> Scheduler:
    return Scheduler(app.engine, app.config["schedules"])


def cmd_scheduler(args) -> int:
    roles.quiet_pika(args.verbose)  # the role says when it takes and loses the lease
    roles.run_scheduler(App.load(args.config, role="scheduler"))
    return 0


def cmd_list(args) -> int:
    app = App.load(args.config)
    try:
        control = _control(app)
        views = control.jobs()
        lease = read_lease(app.engine)
    finally:
        app.close()
    if args.json:
        for view in views:
            print(json.dumps({"job": view.spec.id, "type": view.spec.type, "when": view.spec.describe(),
                              "tags": list(view.spec.tags), "data": view.spec.data,
                              "next_run": view.next_run.isoformat() if view.next_run else None,
                              "paused": view.pause.describe() if view.pause else None}))
        return 0
    for view in views:
        state = f"paused: {view.pause.describe()}" if view.pause else "active"
        next_run = f"{view.next_run:%Y-%m-%d %H:%M:%S}Z" if view.next_run else "-"
        print(f"{view.spec.id:<24} {view.spec.type:<12} {view.spec.describe():<34} next {next_run:<20} {state}")
    if not views:
        print("no jobs: add some under `schedules:` in doppel.yaml", file=sys.stderr)
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
    app = App.load(args.config)
    try:
        control = _control(app)
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
    app = App.load(args.config)
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
    app = App.load(args.config)
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
