"""The `doppel` command as a person runs it: a real process, the embedded default, a demo production."""
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def doppel(*args, cwd, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-m", "doppel", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    if check and run.returncode != 0:
        raise AssertionError(f"doppel {' '.join(args)} exited {run.returncode}: {run.stderr}")
    return run


@pytest.fixture
def demo(tmp_path):
    """A demo production with a living copy, and the config file that describes it."""
    doppel("demo", "--keep", cwd=tmp_path)
    return tmp_path, str(tmp_path / ".doppel/demo/doppel.yaml")


def test_demo_clones_expires_then_fails_production_over_and_back(tmp_path):
    run = doppel("demo", cwd=tmp_path)
    assert "ready" in run.stdout and "deleted" in run.stdout
    assert "-> http://demo-copy.localhost" in run.stdout
    assert "0 in the copy" in run.stdout
    config = ".doppel/demo/doppel.yaml"
    listing = doppel("-c", config, "env", "list", "--all", cwd=tmp_path).stdout
    assert "demo-copy" in listing and "deleted" in listing
    # the alarm failed production over once, and the failback brought the order the DR copy took home
    types = [e["type"] for e in json.loads(doppel("-c", config, "events", "--json", cwd=tmp_path).stdout)]
    assert types.count("failover.done") == 1 and types.count("failback.done") == 1
    assert "shop.example.com: 127.0.0.10 -> 127.0.0.20" in run.stdout
    with closing(sqlite3.connect(tmp_path / ".doppel/demo/production/shop/data/shop.db")) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE total_cents = 4200").fetchone()[0] == 1
    status = doppel("-c", config, "dr", "status", cwd=tmp_path).stdout
    assert "normal" in status and "failed back" in status


def test_publish_then_events_shows_the_chain(demo):
    cwd, config = demo
    event_id = doppel("-c", config, "publish", "env.requested", "--data",
                      '{"env": "cli-copy", "production": "shop"}', cwd=cwd).stdout.strip()
    trail = doppel("-c", config, "events", "--correlation", event_id, cwd=cwd).stdout
    for step in ("env.requested", "snapshot.done", "stack.ready", "env.ready"):
        assert step in trail
    assert "-> snapshot: done" in trail


def test_invalid_input_is_refused_with_what_to_fix(demo):
    cwd, config = demo
    run = doppel("-c", config, "publish", "env.requested", "--data", '{"env": "Bad Name"}', cwd=cwd, check=False)
    assert run.returncode == 2
    assert "env: must be 2-40 characters" in run.stderr
    assert "production: Missing data for required field" in run.stderr
    run = doppel("-c", config, "env", "create", "x1", "--from", "nosuch", cwd=cwd, check=False)
    assert run.returncode == 2 and "no production 'nosuch'" in run.stderr and "shop" in run.stderr


def test_an_event_the_bus_could_not_carry_is_refused_with_the_field_and_no_traceback(demo):
    cwd, config = demo
    data = '{"env": "cli-long", "production": "shop"}'

    long_id = doppel("-c", config, "publish", "env.requested", "--id", "i" * 300, "--data", data, cwd=cwd, check=False)
    long_chain = doppel("-c", config, "publish", "env.requested", "--correlation", "€" * 86, "--data", data, cwd=cwd,
                        check=False)
    huge_number = doppel("-c", config, "publish", "env.requested", "--data", '{"env": ' + "9" * 5000 + "}", cwd=cwd,
                         check=False)

    assert [run.returncode for run in (long_id, long_chain, huge_number)] == [2, 2, 2]
    assert "--id refused: attribute 'id' is 300 bytes of UTF-8; at most 255" in long_id.stderr
    assert "--correlation refused: attribute 'correlationid' is 258 bytes" in long_chain.stderr
    assert "--data holds an integer of more than 4300 digits" in huge_number.stderr
    assert "Traceback" not in long_id.stderr + long_chain.stderr + huge_number.stderr
    assert "cli-long" not in doppel("-c", config, "env", "list", "--all", cwd=cwd).stdout


def test_verify_of_a_corrupted_backup_fails_naming_the_backup_and_the_mismatch(demo):
    cwd, config = demo
    backup_id = doppel("-c", config, "backup", "now", "demo-copy", cwd=cwd).stdout.split()[0]
    assert "verified" in doppel("-c", config, "backup", "verify", backup_id, cwd=cwd).stdout

    # When a byte of the stored archive changes behind Doppel's back
    (archive,) = (Path(cwd) / ".doppel/demo/state/local/objects").rglob("archive.tar.zst")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    run = doppel("-c", config, "backup", "verify", backup_id, cwd=cwd, check=False)
    assert run.returncode == 1
    assert backup_id in run.stderr and "sha256" in run.stderr
    assert "FAILED" in doppel("-c", config, "backup", "list", cwd=cwd).stdout


def test_creating_a_name_that_is_living_says_so_instead_of_waiting(demo):
    cwd, config = demo
    run = doppel("-c", config, "env", "create", "demo-copy", "--from", "shop", "--timeout", "20s", cwd=cwd,
                 check=False)
    assert run.returncode == 2
    assert "environment demo-copy already exists (ready" in run.stderr and "doppel env delete demo-copy" in run.stderr


def test_failover_dry_run_prints_the_steps_and_changes_nothing(demo):
    cwd, config = demo
    refused = doppel("-c", config, "dr", "failover", "shop", "--dry-run", cwd=cwd, check=False)
    assert refused.returncode == 1 and "backup   fails" in refused.stdout and "doppel backup now shop" in refused.stdout
    doppel("-c", config, "backup", "now", "shop", cwd=cwd)
    run = doppel("-c", config, "dr", "failover", "shop", "--dry-run", cwd=cwd)
    assert "shop.example.com A: no record -> 127.0.0.20 (ttl 60)" in run.stdout and "Traceback" not in run.stderr
    assert "normal" in doppel("-c", config, "dr", "status", cwd=cwd).stdout
