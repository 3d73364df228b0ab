"""`doppel demo`: a sample production, cloned, reconfigured, anonymised and expired, then failed over to
its DR copy on an alarm and failed back, on this machine.

Everything is real: files are copied, the SQLite database is snapshotted with its
online backup API, configuration is rewritten, personal data is replaced, the
expiry backs the copy up before deleting it, the alarm restores production's
newest backup into its DR copy and points its name there (the local driver's
records file), and the failback brings what the DR copy took back home. Nothing
outside the demo's directory is touched.
"""
from __future__ import annotations

import shlex
import shutil
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from doppel.cli.common import CommandError, build_event
from doppel.cli.env import follow

ENV = "demo-copy"
HIDDEN = "********"
SITE, HOME, DR_ADDRESS = "shop.example.com", "127.0.0.10", "127.0.0.20"  # the name production answers at
DR_POLICY = {"target": {"env": "shop-dr"}, "alarms": ["shop-down"], "debounce": "10m",
             "dns": {"records": [{"name": SITE, "type": "A", "value": DR_ADDRESS, "ttl": 60}]}}
EXAMPLES = {"demo": ["doppel demo", "doppel demo --keep   # leave the copy running to look at",
                     "doppel demo --dir /tmp/doppel-demo --force   # remake a demo that holds work of its own"]}


def register(sub) -> None:
    p = sub.add_parser("demo", help="clone a sample production on this machine and show what changed",
                       description=__doc__)
    p.add_argument("--dir", default=".doppel/demo",
                   help="where the demo's production, state and doppel.yaml go "
                        "(remade on each run; default .doppel/demo)")
    p.add_argument("--keep", action="store_true",
                   help="leave the copy running instead of expiring it (and skip the failover and failback)")
    p.add_argument("--force", action="store_true",
                   help="remake the demo even when it holds environments or backups made since it ran")
    p.set_defaults(handler=cmd_demo)


def say(text: str = "") -> None:
    print(text, flush=True)


def work_since(config_file: Path) -> list[str]:
    """What a person made in this demo after it ran: environments other than the demo's own, backups of them."""
    from doppel.app import App
    from doppel.config import load_config
    app = App(load_config(config_file), role="demo")
    try:
        envs = sorted({env.name for env in app.registry.all(include_ended=True) if env.name != ENV})
        backups = [entry.id for entry in app.catalogue.list(include_deleted=False) if entry.env != ENV]
    finally:
        app.close()
    return [f"environment {name}" for name in envs] + [f"backup {backup_id}" for backup_id in backups]


def cmd_demo(args) -> int:
    import os

    import yaml

    from clouds.local.sample import make_sample_production
    from doppel.app import App
    from doppel.config import load_config
    from doppel.roles import functions_named
    if os.environ.get("DOPPEL_AMQP_URL"):
        raise CommandError("the demo runs on the embedded bus; unset DOPPEL_AMQP_URL to run it", 2)
    root = Path(args.dir).resolve()
    if root.exists():
        if not (root / "doppel.yaml").exists():
            raise CommandError(f"{root} exists and is not a Doppel demo directory; choose another --dir", 2)
        made = [] if args.force else work_since(root / "doppel.yaml")
        if made:
            shown = ", ".join(made[:5]) + (f" and {len(made) - 5} more" if len(made) > 5 else "")
            raise CommandError(f"{root} holds work made since the demo ran ({shown}); remaking the demo would "
                               "delete it. Add --force to remake it anyway, or --dir to run a demo elsewhere", 2)
        shutil.rmtree(root)
    production = root / "production" / "shop"
    entry = make_sample_production(production)
    config_file = root / "doppel.yaml"
    config_file.write_text(yaml.safe_dump({"state_dir": "state", "productions": {"shop": entry},
                                              "dr": {"shop": DR_POLICY}}, sort_keys=False))
    app = App(load_config(config_file), role="demo")
    app.worker(functions_named()).start()
    app.broker.start()
    try:
        return _run(app, entry, production, config_file, args.keep)
    finally:
        app.close()


def _run(app, entry: dict, production: Path, config_file: Path, keep: bool) -> int:
    from clouds.rewrite.configfile import detect_format, read_value
    from core.broker import event_message
    from core.chain import request_id
    from core.registry import DELETED, FAILED, READY
    demo_root = str(config_file.parent)
    short = lambda value: str(value).replace(demo_root, "<demo>")
    say(f"(<demo> is {demo_root})")
    say(f"1. A sample production, 'shop', in {short(production)}:")
    say("   app files, a SQLite database of 50 made-up customers, three config files, a crontab with 2 jobs.")
    say()
    say(f"2. doppel env create {ENV} --from shop --ttl 1h")
    event = build_event("env.requested", {"env": ENV, "production": "shop", "ttl_seconds": 3600, "owner": "demo"})
    app.broker.publish([event_message(event)])
    env = follow(app, lambda: app.registry.by_request(request_id(event)), (READY, FAILED), 300, out=sys.stdout)
    if env.state != READY:
        say(f"   failed: {env.reason}")
        return 1
    clone = Path(env.endpoints["root"])
    for key, value in sorted(env.endpoints.items()):
        say(f"   {key}: {short(value)}")
    say()
    say("3. Its configuration, rewritten for its new role (production -> copy; secrets hidden):")
    hidden_keys = {(r["file"], r["key"]) for r in entry["clone"]["rewrite"] if "{secrets." in str(r["value"])}
    for rule in entry["clone"]["rewrite"]:
        fmt = detect_format(rule["file"]) or "ini"
        before = read_value((production / rule["file"]).read_text(), fmt, rule["key"])
        after = read_value((clone / rule["file"]).read_text(), fmt, rule["key"])
        if (rule["file"], rule["key"]) in hidden_keys:
            before, after = HIDDEN, HIDDEN + (" (new)" if before != after else " (UNCHANGED!)")
        say(f"   {rule['file']:<22} {rule['key']:<15} {short(before)} -> {short(after)}")
    say()
    active = lambda path: [l for l in path.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")
                           and "=" not in l.split()[0]]
    say(f"4. Crons: {len(active(production / 'crontab'))} jobs active in production, "
        f"{len(active(clone / 'crontab'))} in the copy (scheduled work belongs to Doppel's scheduler).")
    say()
    say("5. Personal data, anonymised (first three customers):")
    for label, db in (("production", production / "data/shop.db"), ("copy", clone / "data/shop.db")):
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            for name, email, phone in conn.execute("SELECT name, email, phone FROM customers ORDER BY id LIMIT 3"):
                say(f"   {label:<11} {name:<22} {email:<36} {phone}")
    say()
    if keep:
        say(f"The copy stays; `doppel env delete {ENV}` backs it up and deletes it.")
        next_steps(config_file, keep=True)
        return 0
    say(f"6. doppel env expire {ENV}   (the scheduler does this when the TTL runs out)")
    expired = build_event("env.expired", {"env": ENV, "reason": "ttl"})
    before = len(app.registry.transitions(env))
    app.broker.publish([event_message(expired)])
    env = follow(app, lambda: app.registry.get(env.id), (DELETED, FAILED), 300, out=sys.stdout, already=before)
    say(f"   {env.name} is {env.state}: {env.reason}")
    for backup in app.backups.list(ENV):
        say(f"   backup {backup.id}: {backup.size:,} bytes, sha256 {backup.sha256[:16]}..., in {backup.store}")
    if env.state != DELETED:
        return 1
    say()
    if not _disaster(app, production):
        return 1
    say()
    chains = {r.correlation_id for r in app.audit.events()}
    say(f"10. The audit trail holds {app.audit.count()} events in {len(chains)} chains (`doppel events` shows them).")
    next_steps(config_file, keep=False)
    return 0


def _chain(app, event_type: str, data: dict, timeout: float = 300):
    """Publish `event_type` and wait for its chain's outcome (`*.done` or `*.failed`, in the audit trail, made by
    the embedded worker); the `.done` record, or None after saying what failed."""
    import time

    from core.broker import event_message
    event = build_event(event_type, data)
    app.broker.publish([event_message(event)])
    kind = {"monitor.alert": "failover", "failback.requested": "failback", "backup.due": "backup"}[event_type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in app.audit.events(correlation_id=event.id) if r.type in (f"{kind}.done", f"{kind}.failed")]
        if found and found[0].type.endswith(".done"):
            return found[0]
        if found:
            say(f"   {kind} failed at {found[0].data.get('step')}: {found[0].data.get('reason')}")
            return None
        time.sleep(0.05)
    raise CommandError(f"no {kind}.done or .failed after {timeout:.0f} s; `doppel events --correlation {event.id}` "
                       "shows how far it went", 3)


def _orders(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def _disaster(app, production: Path) -> bool:
    """Steps 7-9: a backup of production, an alarm that fails it over to its DR copy, and the failback."""
    from core.cloud import DnsRecord
    app.cloud.switch_dns(DnsRecord(SITE, "A", HOME, 300))  # where production's name points today
    say("7. doppel backup now shop   (the scheduler does this on the production's backup schedule)")
    done = _chain(app, "backup.due", {"env": "shop"})
    if done is None:
        return False
    say(f"   backup {done.data['backup_id']} of production, {_orders(production / 'data/shop.db')} orders in it")
    say()
    say("8. Production falls: Aodh's alarm 'shop-down' posts to the gateway's hook (here: published directly)")
    over = _chain(app, "monitor.alert", {"alarm_id": "demo-shop-down", "alarm_name": "shop-down",
                                         "severity": "critical", "previous": "ok", "current": "alarm",
                                         "reason": "http 5xx above 50% for 3 periods"})
    if over is None:
        return False
    copy = Path(over.data["endpoints"]["root"])
    say(f"   failover.done: the DR copy shop-dr serves backup {over.data['backup_id']}")
    say(f"   {SITE}: {HOME} -> {app.cloud.get_dns(SITE).value}   RPO {over.data['rpo_seconds']:.1f} s, "
        f"RTO {over.data['rto_seconds']:.1f} s; scheduled sync and backups of shop are frozen")
    say()
    with closing(sqlite3.connect(copy / "data/shop.db")) as conn, conn:
        conn.execute("INSERT INTO orders (customer_id, total_cents, created_at) VALUES (1, 4200, '2026-12-02')")
    say("9. The DR copy takes an order; then doppel dr failback shop")
    if _chain(app, "failback.requested", {"production": "shop"}) is None:
        return False
    say(f"   failback.done: production has {_orders(production / 'data/shop.db')} orders, the DR copy's "
        f"included; {SITE} -> {app.cloud.get_dns(SITE).value}; sync and backups run again")
    return True


def next_steps(config_file: Path, keep: bool) -> None:
    """The demo's last lines: how to use its configuration, and three commands to try next."""
    say()
    say("Next: use the demo's configuration in this shell, then try three commands:")
    say(f"   export DOPPEL_CONFIG={shlex.quote(str(config_file))}")
    say("   doppel env create my-copy --from shop --ttl 2h   # your own copy of shop")
    say("   doppel env list                                  # what is living, and when it expires")
    say("   doppel events --since 10m                        # what each function did" if keep else
        "   doppel backup list                               # the backup made before the copy was deleted")
