"""Failover RTO of an OpenStack DR target on the test bed, step by step, against the plain restore of the same
backup in the same run.

    python bench/failover_openstack.py [--rounds 2] [--rows 200000] [--results bench/RESULTS.md]

Needs the test bed running (tests/services/openstack.sh, PostgreSQL, BIND, Swift: the same as
tests/integration/openstack/test_dr_openstack.py, whose fixtures this bench runs under pytest, so it sets up and
cleans up exactly as that test does: a production stack of its own session, its PostgreSQL database grown to
`--rows` rows, backups in a Swift container of their own, the DR project's zone, copied images, DR stacks and
DR databases, all removed at the end, whether the bench finished or not).

The production is backed up once and synced to the DR project (images copied through Glance, the backup into
the DR project's Swift). Then each round times, one after the other:
- the plain restore of that backup: its archive fetched from Swift and unpacked (`fetch+unpack`), then the
  engine's own tool, `createdb` + `pg_restore` of the same dump into a fresh database (`plain restore`);
- a failover: a `monitor.alert` published on the embedded bus (no Aodh: its evaluation period is not
  Doppel's) -> `failover.done`, timed step by step:
    before stack   decide, lock, freeze sync and backups, check the backup is in the DR project's Swift
    stack create   Heat creates the DR stack from the copied image (polled every 5 s, the failover's own pace)
    restore        the backup's database restored where the DR stack's outputs say
    probe          every table holds the backup's rows
    dns            the name switched through the DR project's Designate
    RTO            failover.done's rto_seconds (alarm -> serving); `other` = RTO - the steps above
  and, outside the RTO, how long after the switch BIND answers with the DR address (`dig`).
The overhead beyond the restore is RTO - plain restore. Between rounds the DR side is made cold again (DNS back
through Doppel's own switch_back, the DR stack and database deleted), so each round pays the whole failover.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from bench.failover import record  # noqa: E402
from clouds.backups.extract import extract  # noqa: E402
from clouds.databases import postgresql  # noqa: E402
from clouds.openstack.resources import stack_name  # noqa: E402
from core import dr  # noqa: E402
from core.broker import event_message  # noqa: E402
from core.dr_state import FAILED_OVER, NORMAL  # noqa: E402
from doppel.cli.common import build_event  # noqa: E402
from tests.integration.conftest import openstack_cloud, openstack_production_stack  # noqa: E402, F401
from tests.integration.databases.conftest import pg_server, query  # noqa: E402, F401 - fixtures, for pytest
from tests.integration.openstack.conftest import PRODUCTION, production_stack  # noqa: E402, F401
from tests.integration.openstack.test_dr_openstack import (  # noqa: E402, F401
    DR_ADDRESS,
    DR_ENV,
    HOME,
    NAME,
    back_up,
    dig,
    dr_side,
    name_at_home,
    publish,
    shop,
)
from tests.integration.openstack.test_openstack_chain import orders_database  # noqa: E402, F401
from tests.support.waiting import wait_for  # noqa: E402

SECTION = "## OpenStack failover (issue 12)"
STEPS = ("before stack", "stack create", "restore", "probe", "dns")
PLAIN = f"doppel_bench_plain_{os.getpid()}"


class Options:
    """The command line, handed to the pytest run as the `bench` fixture; the rounds come back on it."""

    def __init__(self, args):
        self.args, self.rounds, self.backup = args, [], {}

    @pytest.fixture
    def bench(self):
        return self


class Timed:
    """Wraps a callable, recording (start, end) of each call (perf_counter); the failover's steps run on the
    worker's threads."""

    def __init__(self, function):
        self.function, self.calls = function, []

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.calls.append((started, time.perf_counter()))


def plain_restore(store, manifest, server, work: Path) -> dict:
    """The backup's archive fetched and unpacked, then its dump restored by the engine's own tool."""
    started = time.perf_counter()
    extract(store, manifest, work, None)
    fetched = time.perf_counter()
    (component,) = manifest.server_databases
    if component.kind != "postgresql":
        raise SystemExit(f"the bench restores PostgreSQL dumps; this backup holds a {component.kind} one")
    try:
        postgresql.create(server, PLAIN)
        command = ["pg_restore", "--host", server.host, "--port", str(server.port), "--username", server.user,
                   "--no-password", "--no-owner", "--no-acl", "--exit-on-error", "--dbname", PLAIN]
        cat = subprocess.Popen(["cat", *(str(work / part) for part in component.files)], stdout=subprocess.PIPE)
        subprocess.run(command, stdin=cat.stdout, check=True, env=server.tool_env())
        cat.stdout.close()
        assert cat.wait() == 0
        restored = time.perf_counter()
        rows = query(server, PLAIN, "SELECT count(*) FROM public.orders")[0][0]
    finally:
        postgresql.drop(server, PLAIN)
        shutil.rmtree(work, ignore_errors=True)
    return {"fetch+unpack": fetched - started, "plain restore": restored - fetched, "rows": rows}


def fail_over(front, dr_side, round_no: int) -> dict:  # noqa: F811
    """One alert -> failover.done, each step's seconds; then how long until BIND answers with the DR address."""
    with pytest.MonkeyPatch.context() as patch:
        cloud, timers = front.app.deps.cloud, {}
        for name, verb in (("stack", "dr_stack"), ("restore", "dr_restore"), ("probe", "dr_probe")):
            timers[name] = Timed(getattr(cloud, verb))
            patch.setattr(cloud, verb, timers[name])
        timers["dns"] = Timed(dr.switch_to_dr)
        patch.setattr(dr, "switch_to_dr", timers["dns"])
        return timed_failover(front, dr_side, round_no, timers)


def timed_failover(front, dr_side, round_no: int, timers: dict) -> dict:  # noqa: F811
    event = build_event("monitor.alert", {"alarm_id": f"bench-{round_no}", "alarm_name": front.alarm_name,
                                          "previous": "ok", "current": "alarm"}, source="bench")
    started = time.perf_counter()
    front.app.broker.publish([event_message(event)])
    outcome = wait_for(lambda: [e for kind in ("failover.done", "failover.failed")
                                for e in front.app.audit.events(event_type=kind) if e.correlation_id == event.id],
                       900, "the failover's outcome", interval=0.2)[0]
    if outcome.type != "failover.done":
        raise AssertionError(f"round {round_no}: {outcome.type}: {outcome.data}")
    switched = timers["dns"].calls[-1][1]
    wait_for(lambda: dig(NAME) == [DR_ADDRESS], 120, f"BIND answering {NAME} with {DR_ADDRESS}", interval=0.1)
    visible = time.perf_counter() - switched
    front.quiesce()
    stack = timers["stack"].calls
    steps = {"before stack": stack[0][0] - started, "stack create": stack[-1][1] - stack[0][0],
             "stack polls": len(stack)}
    for name in ("restore", "probe", "dns"):
        steps[name] = sum(end - start for start, end in timers[name].calls)
    steps["RTO"] = outcome.data["rto_seconds"]
    steps["other"] = steps["RTO"] - sum(steps[name] for name in STEPS)
    steps["dns visible"] = visible
    steps["heat alone"] = heat_seconds(dr_side)
    return steps


def heat_seconds(conn) -> float:
    """Heat's own time for the DR stack: its creation time to its CREATE_COMPLETE event (whole seconds)."""
    stack = conn.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=False)
    complete = [e.event_time for e in conn.orchestration.stack_events(stack)
                if e.resource_name == stack.name and e.resource_status == "CREATE_COMPLETE"]
    return (datetime.fromisoformat(complete[-1].rstrip("Z")) - datetime.fromisoformat(stack.created_at.rstrip("Z"))
            ).total_seconds()


def make_cold(front, dr_side) -> None:  # noqa: F811
    """DNS home through Doppel's own switch back, the DR stack and database gone, the row normal, jobs unfrozen."""
    app, policy = front.app, front.app.config["dr"][PRODUCTION]
    dr.switch_back(app.deps, PRODUCTION, policy, app.dr_states.get(PRODUCTION).previous_dns)
    app.cloud.dr_delete(PRODUCTION, front.target)
    wait_for(lambda: dr_side.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=True) is None, 300,
             "the DR stack deleted", interval=1)
    app.dr_states.move(PRODUCTION, (FAILED_OVER,), NORMAL, holder=None, dr_backup_id=None, previous_dns=[],
                       dns_switched=False, last_trigger_at=None, detail=None)
    app.deps.scheduler.resume_jobs(dr.freeze_selector(PRODUCTION))
    wait_for(lambda: dig(NAME) == [HOME], 120, f"BIND answering {NAME} with {HOME} again", interval=0.2)


def test_openstack_failover_rto(bench, shop, dr_side, pg_server, orders_database, tmp_path):  # noqa: F811
    rows = bench.args.rows
    query(pg_server, orders_database, "INSERT INTO public.orders SELECT n, md5(n::text) || repeat('x', 60) "
                                      f"FROM generate_series(41, {40 + rows}) AS n")
    front = shop()
    backup = back_up(front, PRODUCTION)
    publish(front, "sync.due", production=PRODUCTION)
    manifest = front.app.backups.find(backup)
    bench.backup = {"id": backup, "mb": manifest.size / 1e6, "rows": 40 + rows}
    for n in range(bench.args.rounds):
        plain = plain_restore(front.app.backups.store, manifest, pg_server, tmp_path / f"plain-{n}")
        assert plain["rows"] == 40 + rows
        steps = fail_over(front, dr_side, n)
        bench.rounds.append({**plain, **steps, "overhead": steps["RTO"] - plain["plain restore"]})
        print(line(n + 1, bench.rounds[-1]), flush=True)
        make_cold(front, dr_side)


COLUMNS = ("fetch+unpack", "plain restore", *STEPS, "other", "RTO")


def line(label, r: dict) -> str:
    cells = [f"{r[c]:.2f} s" for c in (*COLUMNS, "overhead")] + [f"{r['dns visible']:.2f} s"]
    cells[COLUMNS.index("stack create")] += f" ({r['heat alone']:.0f} s Heat, {r['stack polls']:.0f} looks)"
    return f"| {label} | " + " | ".join(cells) + " |"


def table(rounds: list[dict]) -> str:
    lines = ["| round | " + " | ".join(COLUMNS) + " | overhead (RTO - plain restore) | BIND answers after |",
             "|---" + "|---:" * (len(COLUMNS) + 2) + "|"]
    lines += [line(n, r) for n, r in enumerate(rounds, 1)]
    if len(rounds) > 1:
        lines.append(line("median", {k: statistics.median(r[k] for r in rounds)
                                     for k in (*COLUMNS, "overhead", "dns visible", "stack polls", "heat alone")}))
    return "\n".join(lines)


def commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="failovers to time (each one cold); default 2")
    parser.add_argument("--rows", type=int, default=200_000,
                        help="rows added to production's orders table before the backup (about 100 bytes each); "
                             "default 200000")
    parser.add_argument("--results", default=None, help="write the table into this RESULTS.md's section")
    parser.add_argument("-v", "--verbose", action="store_true", help="pytest's own output, in full")
    args = parser.parse_args()
    if args.rounds < 1 or args.rows < 0:
        parser.error("--rounds must be at least 1 and --rows not negative")
    options = Options(args)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-failover-os-") as base:
        flags = ["-p", "no:cacheprovider", "-p", "no:warnings", "-q", "-s", "-o", "timeout=0", "--rootdir",
                 str(ROOT), "--basetemp", base, *(["-vv"] if args.verbose else ["--tb=short"])]
        code = pytest.main([__file__, *flags], plugins=[options])
    if code != 0 or not options.rounds:
        print(f"the bench failed (pytest exit {code}); what it made was cleaned up by the fixtures", file=sys.stderr)
        return 1
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    body = (f"{SECTION}\n\n`python bench/failover_openstack.py --rounds {args.rounds} --rows {args.rows}` at commit "
            f"{commit()}, on {os.cpu_count()} CPU(s), {time.monotonic() - started:.0f} s in all with the set-up; "
            f"production's database {options.backup['rows']} rows, backup {options.backup['mb']:.1f} MB (zstd). "
            f"The machine is shared with other test runs: `uptime` before: `{uptime_before}`; after: "
            f"`{uptime_after}`.\n\n{table(options.rounds)}\n\n"
            "Each failover is cold (no DR stack, no DR database) and answers a `monitor.alert` put on the embedded "
            "bus. `plain restore` is `createdb` + `pg_restore` of the backup's dump, already fetched and unpacked "
            "(`fetch+unpack`, Swift -> disk); the failover's `restore` streams the archive out of the DR project's "
            "Swift into pg_restore, so it holds both. `stack create` is Heat building the DR stack, seen by a "
            "failover that looks every 5 s; `other` is the bus hops, the DNS read before the switch and the "
            "state row's updates. `BIND answers after` (outside the RTO) is Designate's pool manager pushing the "
            "zone to BIND.\n")
    print(table(options.rounds))
    if args.results:
        record(Path(args.results), body, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
