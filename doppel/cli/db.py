"""`doppel db`: the state database's schema revision, and upgrading it after a new Doppel is installed."""
from __future__ import annotations

PG_UPGRADE = "DOPPEL_DB_URL=postgresql+psycopg://doppel@db/doppel doppel db upgrade"
EXAMPLES = {"db": ["doppel db status", PG_UPGRADE], "db upgrade": ["doppel db upgrade", PG_UPGRADE],
            "db status": ["doppel db status"]}


def register(sub) -> None:
    p = sub.add_parser("db", help="the state database's schema: status, upgrade")
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    q = actions.add_parser("upgrade", help="bring the database's schema to this Doppel's revision, keeping every row "
                                           "(stop the Doppel processes and back the database up first)")
    q.set_defaults(handler=cmd_upgrade)
    q = actions.add_parser("status", help="the database's schema revision and this Doppel's; exit 1 when they "
                                          "differ")
    q.set_defaults(handler=cmd_status)


def _database(args):
    from core.db import redact_url
    from doppel.app import App
    app = App.load(args.config, role="cli")
    engine = app.unchecked_engine
    return engine, redact_url(str(engine.url))


def cmd_upgrade(args) -> int:
    from doppel import migrations
    engine, where = _database(args)
    before, after = migrations.upgrade(engine)
    if before == after:
        print(f"{where}: already at schema revision {after.revision}, nothing to do")
    else:
        print(f"{where}: upgraded from {before.describe()} to revision {after.revision}")
    return 0


def cmd_status(args) -> int:
    from doppel import migrations
    engine, where = _database(args)
    found = migrations.status(engine)
    print(f"{where}: {found.describe()}; this Doppel's schema is revision {migrations.HEAD}")
    if found.current:
        return 0
    if found.empty:
        print("it is made at that revision by the first command that uses it")
        return 0
    print(f"run `{migrations.UPGRADE}`" if found.known else "a newer Doppel upgraded it")
    return 1
