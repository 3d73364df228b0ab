"""The command line as a person meets it on the first day (issue 19): no tracebacks for their mistakes, a restore
into a new name that is an environment, output for scripts, completion, and quick start-up."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib

import pytest

from doppel.cli import build_parser, main
from doppel.cli.common import subcommands
from tests.flow.test_cli import ROOT, doppel


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One demo with a living copy, shared by the tests that only read it (a demo takes a few seconds)."""
    cwd = tmp_path_factory.mktemp("demo")
    doppel("demo", "--keep", cwd=cwd)
    return cwd


def leaf_commands():
    """Every command of `doppel --help` that runs something, as its words: ['env', 'create'], ['run'], ..."""
    return [path.split() for path, parser in subcommands(build_parser())
            if not any(a.__class__.__name__ == "_SubParsersAction" for a in parser._actions)]


def argv_for(words: list[str]) -> list[str]:
    """Arguments of the right shape for a command, so each reaches its handler (and the broken environment)."""
    parser = dict(subcommands(build_parser()))[" ".join(words)]
    argv = list(words)
    for action in parser._actions:
        if not action.option_strings and action.nargs != 0 and action.dest != "help":
            argv.append(action.choices[0] if action.choices else {"type": "poll.tick"}.get(action.dest, "demo-copy"))
        elif action.required:
            argv += [action.option_strings[0], {"--from": "shop", "--to": "other-copy"}.get(
                action.option_strings[0], "snapshot")]
    return argv


def run_in_process(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def broken(tmp_path, monkeypatch):
    """Ways a person's environment can be broken, each with what the message must name to fix it."""
    good = tmp_path / "good"
    good.mkdir()
    db = sqlite3.connect(good / "doppel.db")
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    db.commit()
    db.close()
    data = (good / "doppel.db").read_bytes()
    (tmp_path / "truncated.db").write_bytes(data[:len(data) // 3])
    (tmp_path / "random.db").write_bytes(os.urandom(8192))
    (tmp_path / "a-file").write_text("")
    (tmp_path / "under-a-file.yaml").write_text("state_dir: a-file/state\n")
    (tmp_path / "bad.yaml").write_text("bus: [unclosed\n")
    (tmp_path / "typo.yaml").write_text("productoins: {}\n")
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("DOPPEL_")]:
        monkeypatch.delenv(name)
    return {
        "not a URL": ({"DOPPEL_DB_URL": "notaurl"}, [], "DOPPEL_DB_URL"),
        "truncated database": ({"DOPPEL_DB_URL": f"sqlite:///{tmp_path}/truncated.db"}, [], "truncated.db"),
        "random bytes": ({"DOPPEL_DB_URL": f"sqlite:///{tmp_path}/random.db"}, [], "random.db"),
        "state_dir under a file": ({}, ["-c", "under-a-file.yaml"], "state_dir"),
        "invalid YAML": ({}, ["-c", "bad.yaml"], "bad.yaml"),
        "unknown key": ({}, ["-c", "typo.yaml"], "productoins"),
        "missing config": ({"DOPPEL_CONFIG": "nosuch.yaml"}, [], "nosuch.yaml"),
    }


# Commands that do not touch what a case breaks, and so may succeed in it (exit 0).
DATABASE = ("not a URL", "truncated database", "random bytes", "state_dir under a file")
UNTOUCHED = {("config", "show"): DATABASE, ("topology",): DATABASE,
             ("demo",): ("state_dir under a file", "invalid YAML", "unknown key", "missing config")}


def test_every_command_in_a_broken_environment_says_what_to_fix_without_a_traceback(broken, monkeypatch, capsys):
    failures = []
    for case, (variables, options, fix) in broken.items():
        for words in leaf_commands():
            if words == ["demo"] and case in UNTOUCHED[("demo",)]:
                continue  # the demo makes its own configuration; it would run in full
            with monkeypatch.context() as patch:
                for name, value in variables.items():
                    patch.setenv(name, value)
                code, output = run_in_process(options + argv_for(words), capsys)
            allowed = (0, 1, 2) if case in UNTOUCHED.get(tuple(words), ()) else (1, 2)
            said = [line for line in output.splitlines() if line.startswith("doppel: ") and "note:" not in line]
            # Each failure is one line saying what to correct: the broken part, or a check that came first
            # (a production the empty configuration does not have, a role that needs RabbitMQ).
            ok = code in allowed and "Traceback" not in output and "unexpected error" not in output and (
                code == 0 or (said and (fix in output or "usage:" not in output)))
            if not ok:
                failures.append(f"{case}: doppel {' '.join(words)} -> {code}: {output[-300:]}")
    assert not failures, "\n".join(failures)
    for case, (variables, options, fix) in broken.items():  # the commands that read the state name what to fix
        with monkeypatch.context() as patch:
            for name, value in variables.items():
                patch.setenv(name, value)
            code, output = run_in_process(options + ["env", "list"], capsys)
        assert code in (1, 2) and fix in output, (case, output)


def test_debug_shows_the_traceback_that_is_otherwise_hidden(broken, monkeypatch, capsys):
    monkeypatch.setenv("DOPPEL_DB_URL", broken["random bytes"][0]["DOPPEL_DB_URL"])
    code, output = run_in_process(["env", "list"], capsys)
    assert code == 1 and "Traceback" not in output and "random.db cannot be read: file is not a database" in output
    with pytest.raises(Exception, match="file is not a database"):
        main(["--debug", "env", "list"])


MISTAKES = [  # (arguments, exit code, what the message must say)
    (["env", "create", "x1", "--from", "shop", "--ttl", "abc"], 2, "--ttl: 'abc' is not a duration"),
    (["env", "create", "x1", "--from", "shop", "--ttl=-1h"], 2, "--ttl: '-1h' is not a duration"),
    (["env", "create", "x1", "--from", "shop", "--ttl", "30"], 2, "'30' has no unit; write e.g. 30s, 30m"),
    (["env", "create", "x1", "--from", "shop", "--ttl", "99999d"], 2, "environments.max_ttl"),
    (["env", "create", "x1", "--from", "shop", "--timeout", "abc"], 2, "--timeout: 'abc' is not a duration"),
    (["env", "create", "x1", "--from", "shop", "--data-version", "garbage"], 2, "'garbage': no such backup"),
    (["env", "create", "My Env", "--from", "shop"], 2, "must be 2-40 characters"),
    (["env", "create", "x1", "--from", "nosuch"], 2, "no production 'nosuch'"),
    (["backup", "restore", "20250101T000000Z-000000", "--to", "My Env"], 2, "--to 'My Env': must be 2-40"),
    (["backup", "restore", "20250101T000000Z-000000", "--to", "a" * 300], 2, "must be 2-40"),
    (["backup", "restore", "20250101T000000Z-000000", "--to", "shop"], 2, "that is a production"),
    (["backup", "restore", "20250101T000000Z-000000", "--to", "fresh-copy"], 1, "backup list"),
    (["backup", "now", "demo-copy", "--timeout", "abc"], 2, "--timeout: 'abc'"),
    (["backup", "prune", "nosuchenv", "--dry-run"], 1, "nothing is known of 'nosuchenv'"),
    (["backup", "show", "nosuch"], 1, "backup list"),
    (["schedule", "pause", "nosuch"], 2, "no job 'nosuch' to pause"),
    (["publish", "env.requested", "--data", '{"env": "ab-c", "production": "nosuch"}'], 2,
     "names production 'nosuch'"),
    (["publish", "no.such.type"], 2, "no.such.type"),
    (["events", "--limit", "0"], 2, "not a count"),
    (["events", "--since", "yesterday-ish"], 2, "--since 'yesterday-ish'"),
    (["env", "show", "nosuch"], 1, "doppel env list --all"),
    (["env", "wait", "nosuch"], 1, "doppel env list --all"),
    (["env", "wait", "demo-copy", "--timeout", "5"], 2, "has no unit"),
    (["dlq", "show", "nosuch"], 1, "dlq list"),
    (["gateway", "--port", "http"], 2, "not a port"),
    (["env", "list", "-o", "xml"], 2, "invalid choice: 'xml'"),
]


@pytest.mark.parametrize("argv,code,says", MISTAKES, ids=[" ".join(m[0])[:60] for m in MISTAKES])
def test_a_mistake_is_refused_with_what_to_fix_and_no_traceback(demo_dir, argv, code, says, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    for name in [k for k in os.environ if k.startswith("DOPPEL_")]:
        monkeypatch.delenv(name)
    answer, output = run_in_process(["-c", ".doppel/demo/doppel.yaml", *argv], capsys)
    assert (answer, "Traceback" in output) == (code, False), output
    assert says in output


def test_without_a_config_file_doppel_says_where_it_looked(tmp_path):
    run = doppel("env", "list", cwd=tmp_path)
    assert "no doppel.yaml found (looked at " + str(tmp_path / "doppel.yaml") in run.stderr
    shown = doppel("config", "show", "-o", "json", cwd=tmp_path).stdout
    assert json.loads(shown)["file"] is None and "no doppel.yaml found" in json.loads(shown)["origin"]


def test_config_show_names_the_file_and_masks_secrets(demo_dir):
    env = {"DOPPEL_AMQP_URL": "amqp://doppel:s3cret-pass@127.0.0.1:5672/doppel", "SENTRY_DSN": "https://k3y@s/1"}
    run = subprocess.run([sys.executable, "-m", "doppel", "-c", ".doppel/demo/doppel.yaml", "config", "show"],
                         cwd=demo_dir, capture_output=True, text=True, env={**os.environ, **env,
                                                                            "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    assert f"file: {demo_dir / '.doppel/demo/doppel.yaml'}" in run.stdout and "origin: --config" in run.stdout
    assert "s3cret-pass" not in run.stdout and "k3y" not in run.stdout
    assert "amqp://doppel:********@127.0.0.1:5672/doppel" in run.stdout


# -- restore into a new name ------------------------------------------------------------
def test_a_restore_into_a_new_name_is_an_environment_configured_like_a_clone(tmp_path):
    doppel("demo", "--keep", cwd=tmp_path)
    config = ".doppel/demo/doppel.yaml"
    run = lambda *args, **kw: doppel("-c", config, *args, cwd=tmp_path, **kw)
    backup_id = run("backup", "now", "demo-copy").stdout.split()[0]

    restored = run("backup", "restore", backup_id, "--to", "perf-restore", "--ttl", "2h", "--owner", "bob",
                   "--timeout", "2m")

    # It is listed, shown and owned like a clone, with a TTL, history and endpoints of its own
    assert "perf-restore is ready, expires" in restored.stdout
    (listed,) = [e for e in json.loads(run("env", "list", "-o", "json").stdout) if e["name"] == "perf-restore"]
    assert (listed["state"], listed["owner"], listed["production"], listed["ttl_seconds"]) == (
        "ready", "bob", "shop", 7200)
    shown = json.loads(run("env", "show", "perf-restore", "-o", "json").stdout)
    assert [h["to"] for h in shown["history"]] == ["requested", "cloning", "configuring", "ready"]
    assert shown["data_version"] == backup_id
    # Its configuration points at its own database, with credentials that are neither the source's nor production's
    envs = tmp_path / ".doppel/demo/state/local/envs"
    own, source = (envs / "perf-restore/root", envs / "demo-copy/root")
    assert shown["endpoints"]["root"] == str(own)
    dotenv = dict(line.split("=", 1) for line in (own / ".env").read_text().splitlines() if "=" in line)
    source_env = dict(line.split("=", 1) for line in (source / ".env").read_text().splitlines() if "=" in line)
    assert dotenv["DATABASE_URL"] == f"sqlite:///{own}/data/shop.db"
    assert f"path = {own}/data/shop.db" in (own / "config/app.ini").read_text()
    assert dotenv["DB_PASSWORD"] != source_env["DB_PASSWORD"]
    production_env = (tmp_path / ".doppel/demo/production/shop/.env").read_text()
    assert dotenv["DB_PASSWORD"] not in production_env
    # reap never takes it for an orphan; delete and expiry treat it as any clone (backup first)
    assert "perf-restore" not in run("reap", "--dry-run").stdout
    deleted = run("env", "delete", "perf-restore")
    assert "perf-restore is deleted" in deleted.stdout
    assert any(b["env"] == "perf-restore" for b in json.loads(run("backup", "list", "-o", "json").stdout))
    assert not (envs / "perf-restore").exists()


# -- output for scripts, version, completion ------------------------------------------------
LIST_AND_SHOW = [["env", "list"], ["env", "list", "--all"], ["env", "show", "demo-copy"], ["backup", "list"],
                 ["events"], ["dlq", "list"], ["dlq", "show", "x"], ["schedule", "list"], ["dr", "status"],
                 ["dr", "report"], ["config", "show"], ["backup", "show", "BACKUP"], ["trace", "CHAIN"]]


def test_every_list_and_show_command_prints_json_and_yaml_that_parse(demo_dir):
    import yaml
    config = ".doppel/demo/doppel.yaml"
    backup_id = doppel("-c", config, "backup", "now", "demo-copy", cwd=demo_dir).stdout.split()[0]
    parsers = dict(subcommands(build_parser()))
    with_output = sorted(path for path, p in parsers.items() if any("--output" in a.option_strings for a in p._actions))
    covered = {" ".join(c[:2]) for c in LIST_AND_SHOW} | {"trace"}  # `trace ID`: a command of one word
    assert covered >= set(with_output) - {"dr failover", "dr failback", "dr drill"}
    chain = json.loads(doppel("-c", config, "events", "-o", "json", cwd=demo_dir).stdout)[0]["correlationid"]
    for command in LIST_AND_SHOW:
        command = [{"BACKUP": backup_id, "CHAIN": chain}.get(word, word) for word in command]
        for fmt, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
            run = doppel("-c", config, *command, "-o", fmt, cwd=demo_dir, check=command[:2] != ["dlq", "show"])
            if command[:2] == ["dlq", "show"]:
                assert run.returncode == 1 and "no parked message x" in run.stderr
                continue
            parsed = parse(run.stdout)
            assert isinstance(parsed, (list, dict)), (command, run.stdout)
    events = json.loads(doppel("-c", config, "events", "-o", "json", cwd=demo_dir).stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", events[0]["time"])  # ISO 8601 UTC for scripts


def test_tables_have_headers_and_events_end_with_the_newest(demo_dir):
    config = ".doppel/demo/doppel.yaml"
    assert doppel("-c", config, "env", "list", cwd=demo_dir).stdout.startswith("NAME ")
    assert doppel("-c", config, "backup", "list", cwd=demo_dir).stdout.startswith("ID ")
    everything = json.loads(doppel("-c", config, "events", "-o", "json", cwd=demo_dir).stdout)
    newest_two = json.loads(doppel("-c", config, "events", "--limit", "2", "-o", "json", cwd=demo_dir).stdout)
    assert [e["id"] for e in newest_two] == [e["id"] for e in everything[-2:]]


def test_version_prints_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert doppel("--version", cwd=ROOT).stdout.strip() == f"doppel {version}"


def test_every_command_has_examples_in_its_help():
    missing = [path for path, parser in subcommands(build_parser()) if "Examples:" not in (parser.epilog or "")]
    assert not missing


@pytest.mark.skipif(shutil.which("register-python-argcomplete") is None, reason="argcomplete is not installed")
def test_bash_completion_completes_commands_through_the_hook(tmp_path):
    (tmp_path / "doppel").write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m doppel \"$@\"\n")
    (tmp_path / "doppel").chmod(0o755)
    script = ('eval "$(register-python-argcomplete doppel)"\n'
              'complete_line() { COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$1"; '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _python_argcomplete doppel; echo "${COMPREPLY[*]}"; }\n'
              'complete_line "doppel env cr"\ncomplete_line "doppel backup "\ncomplete_line "doppel env list -o "\n')
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["create"], run
    assert {"now", "list", "restore", "prune"} <= set(lines[1].split())
    assert set(lines[2].split()) == {"table", "json", "yaml"}


# -- start-up ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["env", "create", "--help"]])
def test_help_and_version_import_no_database_broker_or_cloud_sdk(argv):
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "doppel", *argv], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time")}
    heavy = {m for m in imported if m.split(".")[0] in ("sqlalchemy", "pika", "boto3", "botocore", "openstack")}
    assert not heavy and "doppel.cli.env" in imported


def test_env_list_imports_its_own_command_group_and_once_its_file_was_validated_no_config_parser(tmp_path):
    from doppel.cli import GROUPS
    config = tmp_path / "doppel.yaml"
    config.write_text("state_dir: state\n")
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}, "PYTHONPATH": str(ROOT),
               "DOPPEL_CACHE_DIR": str(tmp_path / "cache")}
    imported = []
    for _ in range(2):
        run = subprocess.run([sys.executable, "-X", "importtime", "-m", "doppel", "-c", str(config), "env", "list"],
                             capture_output=True, text=True, cwd=tmp_path, env=environ)
        assert run.returncode == 0, run.stderr[-2000:]
        imported.append({line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()
                         if line.startswith("import time")})
    groups = {f"doppel.cli.{name}" for name in GROUPS}
    assert imported[0] & groups == imported[1] & groups == {"doppel.cli.env"}
    unwanted = ("yaml", "marshmallow", "alembic", "pika", "boto3", "openstack", "sentry_sdk", "apscheduler")
    assert {"yaml", "marshmallow"} <= {m.split(".")[0] for m in imported[0]}  # the first run validated the file
    assert not {m for m in imported[1] if m.split(".")[0] in unwanted}


# -- the demo ------------------------------------------------------------------------------------
def test_demo_ends_with_its_export_line_and_three_commands_and_keeps_work_made_since(tmp_path):
    first = doppel("demo", cwd=tmp_path).stdout.splitlines()
    config = tmp_path / ".doppel/demo/doppel.yaml"
    assert first[-4] == f"   export DOPPEL_CONFIG={config}"
    assert [line.split()[0:2] for line in first[-3:]] == [["doppel", "env"], ["doppel", "env"], ["doppel", "backup"]]
    doppel("-c", str(config), "env", "create", "mine", "--from", "shop", cwd=tmp_path)

    again = doppel("demo", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "environment mine" in again.stderr and "--force" in again.stderr
    assert "mine" in doppel("-c", str(config), "env", "list", cwd=tmp_path).stdout
    assert doppel("demo", "--force", cwd=tmp_path).returncode == 0
    assert "mine" not in doppel("-c", str(config), "env", "list", "--all", cwd=tmp_path).stdout


def test_log_lines_appear_only_with_verbose(demo_dir):
    config = ".doppel/demo/doppel.yaml"
    quiet = doppel("-c", config, "backup", "now", "demo-copy", cwd=demo_dir)
    loud = doppel("-c", config, "-v", "backup", "now", "demo-copy", cwd=demo_dir)
    assert " INFO " not in quiet.stderr and " INFO " in loud.stderr


def test_env_show_says_an_environment_past_its_ttl_is_overdue_and_why(demo_dir):
    from datetime import datetime, timedelta, timezone

    from core.db import make_engine
    from core.registry import CLONING, CONFIGURING, READY, SNAPSHOTTING, Registry
    # Given an environment whose TTL ran out an hour ago, and no scheduler running
    engine = make_engine(f"sqlite:///{demo_dir}/.doppel/demo/state/doppel.db")
    registry = Registry(engine, clock=lambda: datetime.now(timezone.utc) - timedelta(hours=3))
    env, _ = registry.request(name="late-one", request_id="test/late-one", production="shop", ttl_seconds=7200)
    for state in (SNAPSHOTTING, CLONING, CONFIGURING):
        env = registry.move(env, state)
    registry.move(env, READY, expires_at=registry.expiry_for(env))
    engine.dispose()

    shown = doppel("-c", ".doppel/demo/doppel.yaml", "env", "show", "late-one", cwd=demo_dir).stdout

    assert shown.startswith("late-one: ready (overdue)")
    assert "OVERDUE     its TTL ran out 1h ago and no scheduler is running" in shown
    assert "ready (overdue)" in doppel("-c", ".doppel/demo/doppel.yaml", "env", "list", cwd=demo_dir).stdout


# -- progress ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_1_gib_backup_shows_its_total_a_percentage_and_a_rate_while_it_runs(tmp_path):
    """Slow on purpose (about 5-10 s on two busy cores): the issue's case is a 1 GiB backup. The GiB is a sparse
    file, so making it costs nothing and reading it no disk."""
    import pty
    doppel("demo", "--keep", cwd=tmp_path)
    with open(tmp_path / ".doppel/demo/production/shop/app/big.bin", "wb") as big:
        big.truncate(2 ** 30)
    main_fd, terminal = pty.openpty()  # progress on a terminal updates in place, as a person sees it
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    child = subprocess.Popen([sys.executable, "-m", "doppel", "-c", ".doppel/demo/doppel.yaml", "backup", "now",
                              "shop"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                             stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert child.wait() == 0
    os.close(main_fd)
    lines = re.findall(r"backup of shop: ([\d.]+ \w+) of 1\.00 GiB \((\d+)%\), [\d.]+ \w+/s", shown.decode())
    assert lines and lines[-1][1] == "100", shown[-500:]
    assert any(0 < int(share) < 100 for _, share in lines), lines  # seen while it ran, not only at the end


# -- secrets written where a value goes --------------------------------------------------------
def test_a_literal_webhook_url_or_rewritten_password_is_refused_naming_the_key(tmp_path):
    from clouds.local.sample import make_sample_production
    from core.errors import ConfigError
    from doppel.config import parse_config
    shop = make_sample_production(tmp_path / "shop")
    shop["clone"]["rewrite"].append({"file": ".env", "key": "DB_PASSWORD", "value": "hunter2-literal"})

    with pytest.raises(ConfigError) as literal_password:
        parse_config({"productions": {"shop": shop}}, None)
    with pytest.raises(ConfigError) as literal_webhook:
        parse_config({"notify": {"webhooks": [{"url": "https://hooks.slack.com/services/T0/B0/XYZ"}]}}, None)

    last = len(shop["clone"]["rewrite"]) - 1
    assert f"productions.shop.clone.rewrite.{last}.value: DB_PASSWORD looks like a secret" in str(
        literal_password.value)
    assert "hunter2-literal" not in str(literal_password.value)
    assert "notify.webhooks.0.url: unknown key" in str(literal_webhook.value)
    assert "url_env: DOPPEL_SLACK_WEBHOOK" in str(literal_webhook.value) and "XYZ" not in str(literal_webhook.value)
    shop["clone"]["rewrite"].pop()
    assert parse_config({"productions": {"shop": shop}, "notify": {"webhooks": [{"url_env": "HOOK"}]}}, None)
