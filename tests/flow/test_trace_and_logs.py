"""A chain's JSON log lines carry the chain; `doppel trace` prints it as a timeline with each step's duration."""
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from bus.ledger import LedgerEntry
from clouds.local.sample import make_sample_production
from core.audit import AuditRecord
from doppel.cli.trace import build_timeline

ROOT = Path(__file__).resolve().parents[2]
CHAIN = [("env.requested", {"snapshot"}), ("snapshot.done", {"clone", "notify"}),
         ("stack.ready", {"configure", "notify"}), ("env.ready", {"notify"})]


def doppel(tmp_path, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOPPEL_", "SENTRY_"))}
    env.update(PYTHONPATH=str(ROOT), DOPPEL_CONFIG=str(tmp_path / "doppel.yaml"))
    run = subprocess.run([sys.executable, "-m", "doppel", *args], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0 or not check, run.stdout + run.stderr
    return run


def test_a_chain_logs_json_lines_with_its_chain_and_trace_shows_every_step_in_order(tmp_path):
    # Given a production and an environment made of it, logged as JSON
    entry = make_sample_production(tmp_path / "production" / "shop")
    (tmp_path / "doppel.yaml").write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"),
                                                          "productions": {"shop": entry}}))
    made = doppel(tmp_path, "--log-format", "json", "-vv", "env", "create", "perf", "--from", "shop")
    request = re.search(r"request ([0-9a-f-]{36})", made.stderr + made.stdout).group(1)

    # Then every log line is one JSON object, and every line a handler logged names the chain, event and env
    # (env create's progress lines share stderr with the handlers' threads, so a line may begin with one of them)
    lines = [json.loads(line[line.index('{"time"'):]) for line in made.stderr.splitlines() if '{"time"' in line]
    handled = [line for line in lines if line["function"]]
    ran = {line["function"] for line in handled if "ran on" in line["message"]}
    assert {"snapshot", "clone", "configure", "notify", "audit"} <= ran
    for line in handled:
        assert line["correlation_id"] == request and line["env"] == "perf", line
        assert line["event_id"] and line["event_id"] in line["message"] or line["logger"] != "bus.worker", line
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines)

    # When the chain is traced, by the start of its id as `doppel events` shows it
    table = doppel(tmp_path, "trace", request[:8]).stdout
    traced = json.loads(doppel(tmp_path, "trace", request, "-o", "json").stdout)

    # Then its events come in order, each with the steps that handled it, and each step took some time
    assert [event["type"] for event in traced["events"]] == [event_type for event_type, _ in CHAIN]
    for event, (_, functions) in zip(traced["events"], CHAIN):
        assert {step["function"] for step in event["steps"]} == functions
        assert all(step["status"] == "done" and step["seconds"] > 0 for step in event["steps"])
    offsets = [event["at_seconds"] for event in traced["events"]]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert traced["seconds"] >= offsets[-1]
    positions = [table.index(event_type) for event_type, _ in CHAIN]
    assert positions == sorted(positions)
    assert re.search(r"snapshot +done +\d+\.\d{3}s -> snapshot\.done", table), table
    assert "4 events, 6 steps" in table


def test_a_step_lasts_from_its_event_to_its_completion_and_its_error_is_masked(monkeypatch):
    # Given a chain of two events, the first handled 2.5 s after it was sent, the second failing with a secret
    monkeypatch.setenv("DOPPEL_DB_PASSWORD", "hunter2-secret")
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    first = AuditRecord("test", "e1", "env.requested", "c1", t0, {"env": "perf"})
    second = AuditRecord("doppel/snapshot", "e2", "snapshot.done", "c1", t0 + timedelta(seconds=2.6), {"env": "perf"})
    entries = [LedgerEntry("snapshot", "k1", "done", "e1", "env.requested", "c1",
                           {"emitted": [["snapshot.done", "e2"]]}, t0.timestamp() + 2.5),
               LedgerEntry("clone", "k2", "failed", "e2", "snapshot.done", "c1",
                           {"error": "cannot log in with hunter2-secret"}, t0.timestamp() + 4.0),
               LedgerEntry("audit", "k3", "done", "e2", "snapshot.done", "c1", {}, t0.timestamp() + 9.0)]

    # When its timeline is built (the records given newest first)
    timeline = build_timeline([second, first], entries)

    # Then each step lasts from its event's time to its completion, in order, and no secret is shown
    assert [e["type"] for e in timeline["events"]] == ["env.requested", "snapshot.done"]
    assert [e["at_seconds"] for e in timeline["events"]] == [0.0, 2.6]
    assert timeline["events"][0]["steps"] == [{"function": "snapshot", "status": "done", "seconds": 2.5,
                                               "emitted": ["snapshot.done"], "error": None}]
    clone = timeline["events"][1]["steps"]
    assert [s["function"] for s in clone] == ["clone"]  # the audit trail's own step is not one of the chain's
    assert clone[0]["seconds"] == 1.4 and clone[0]["error"] == "cannot log in with [redacted]"
    assert timeline["seconds"] == 4.0
