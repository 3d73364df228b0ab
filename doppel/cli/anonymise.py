"""`doppel anonymise check PRODUCTION`: personal-looking columns without a rule, and the schema's drift."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from doppel.cli.common import CommandError

EXAMPLES = {"anonymise": ["doppel anonymise check shop"],
            "anonymise check": ["doppel anonymise check shop",
                                "doppel anonymise check shop --accept   # after adding the rules it asked for"]}


def register(sub) -> None:
    p = sub.add_parser("anonymise", help="check a production's databases against its anonymise rules")
    actions = p.add_subparsers(dest="anonymise_command", metavar="ACTION", required=True)
    q = actions.add_parser("check", help="columns that look personal and have no rule; columns new since reviewed",
                           description="Reads production's PostgreSQL and MariaDB databases (names and counts only "
                                       "leave the server) and lists columns that look personal (by name, or by a "
                                       "sample of values: emails, phones) with no rule, rules naming what is gone, and "
                                       "columns new since the last --accept. Exit status 1 when anything is found.")
    q.add_argument("production")
    q.add_argument("--accept", action="store_true",
                   help="record today's columns as reviewed (after adding the rules they need)")
    q.set_defaults(handler=cmd_check)


def cmd_check(args) -> int:
    from clouds.databases import coverage
    from clouds.databases.servers import DatabaseError, Server
    from doppel.app import App

    app = App.load(args.config)
    spec = app.config["productions"].get(args.production)
    if spec is None:
        known = ", ".join(sorted(app.config["productions"])) or "none"
        raise CommandError(f"no production {args.production!r} in the configuration (known: {known})", 2)
    components = [c for c in spec["components"] if c["kind"] in ("postgresql", "mariadb")]
    if not components:
        raise CommandError(f"production {args.production} has no postgresql or mariadb database to check", 2)
    found = False
    for component in components:
        record = Path(app.config.state_dir) / "anonymise" / args.production / f"{component['name']}.json"
        reviewed = json.loads(record.read_text()) if record.is_file() else None
        rules = [r for r in spec["clone"]["anonymise"] if r["database"] == component["name"]]
        try:
            report = coverage.check(Server.of(component["kind"], component), component["database"], rules, reviewed)
        except DatabaseError as exc:
            raise CommandError(f"database {component['name']}: {exc}") from None
        found |= _print(component["name"], report, reviewed is None)
        if args.accept:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(report.columns, indent=1) + "\n")
            print(f"{component['name']}: {len(report.columns)} columns recorded as reviewed", file=sys.stderr)
    return 1 if found else 0


def _print(name: str, report, never_reviewed: bool) -> bool:
    lines = [*(f"  no rule, looks personal: {c}" for c in report.unruled),
             *(f"  rule names what is gone: {r}" for r in report.stale_rules),
             *(f"  new since reviewed:      {c}" for c in report.new_columns),
             *(f"  gone since reviewed:     {c}" for c in report.gone_columns)]
    print(f"{name}: " + ("clean" if not lines else f"{len(lines)} finding(s)"))
    for line in lines:
        print(line)
    if never_reviewed:
        print(f"  (columns never reviewed: --accept records today's {len(report.columns)} as the baseline)")
    return not report.clean
