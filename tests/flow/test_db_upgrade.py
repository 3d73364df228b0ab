"""Schema migrations: a database the previous release made, with its rows, brought to this code's schema by
`doppel db upgrade`; every role refusing to start on an older schema, naming that command; a new one made at once.

The previous release's databases are dumps in data/ (SQLite and PostgreSQL), made by Doppel before it had
migrations: two environments requested with `doppel env create`, one deleted, so every table a chain touches
has rows.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import inspect, text

from core.db import make_engine
from doppel import migrations

pytestmark = pytest.mark.both_databases
ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
ROLES = {"worker": ["worker"], "gateway": ["gateway"], "scheduler": ["scheduler"],
         "listener": ["listen", "openstack", "--url", "amqp://guest:guest@127.0.0.1:1/"]}
TABLES = ("environments", "environment_transitions", "audit_events", "idempotency_ledger", "backups",
          "scheduler_expiries")


@pytest.fixture
def site(tmp_path, state_db_url, monkeypatch, capsys):
    """The database, `doppel ARGS...` in this process against it (embedded bus), and the environment a role's
    process is started with."""
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state")}))
    url = state_db_url or f"sqlite:///{tmp_path / 'state' / 'doppel.db'}"
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("DOPPEL_DB_URL", url)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "DOPPEL_CONFIG": str(config),
               "DOPPEL_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}  # never reached: the schema is checked first
    environ.pop("SENTRY_DSN", None)

    def doppel(*args):
        from doppel.cli import main
        capsys.readouterr()
        code = main(["-c", str(config), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    engine = make_engine(url)
    yield engine, doppel, environ
    engine.dispose()


def load_previous_release(engine) -> dict[str, int]:
    """The previous release's database, as its dump holds it; the rows of each table."""
    dump = (DATA / f"state-before-migrations.{engine.dialect.name}.sql").read_text()
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            raw.driver_connection.executescript(dump)
        else:
            raw.driver_connection.execute(dump)
        raw.commit()
    finally:
        raw.close()
    engine.dispose()  # pg_dump's script empties the search_path of the connection that ran it
    return counts(engine)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def refusals(doppel_environ, roles=ROLES) -> dict[str, subprocess.CompletedProcess]:
    """Start every role at once (each must refuse at once); what each said."""
    started = {name: subprocess.Popen([sys.executable, "-m", "doppel", *args], env=doppel_environ,
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in roles.items()}
    done = {}
    for name, process in started.items():
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


def test_db_upgrade_brings_a_previous_release_database_to_this_schema_keeping_every_row(site):
    # Given a database the previous release made, with environments, events, claims and a backup in it
    engine, doppel, environ = site
    before = load_previous_release(engine)
    assert before["environments"] == 2 and before["audit_events"] == 12 and before["backups"] == 1
    assert migrations.status(engine).revision is None

    # When a role starts on it, then `doppel db upgrade` runs
    refused = refusals(environ)
    listed_before = doppel("env", "list")
    status_before = doppel("db", "status")
    upgraded = doppel("db", "upgrade")
    again = doppel("db", "upgrade")

    # Then every role refused, saying to run `doppel db upgrade`, and so did a plain command; nothing was changed
    for role, result in refused.items():
        assert result.returncode == 2, (role, result.stderr)
        assert "made before schema migrations" in result.stderr and "`doppel db upgrade`" in result.stderr, role
        assert "Traceback" not in result.stderr, role
    assert listed_before.returncode == 2 and "`doppel db upgrade`" in listed_before.stderr
    assert status_before.returncode == 1 and "run `doppel db upgrade`" in status_before.stdout
    # and the upgrade brought it to this code's revision, every row kept, with the schema the code makes
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from made before schema migrations (no revision) to revision {migrations.HEAD}" in upgraded.stdout
    assert "already at schema revision" in again.stdout
    assert migrations.status(engine).current
    assert counts(engine) == before
    assert schema_differences(engine) == []
    indexes = {i["name"] for i in inspect(engine).get_indexes("environments")}
    assert "ix_environments_state" in indexes, "revision 0002 ran"
    # and the environments are there to the new code, with their history
    listed = doppel("env", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [e["name"] for e in yaml.safe_load(listed.stdout)] == ["perf-test"]
    shown = doppel("env", "show", "perf-test")
    assert shown.returncode == 0 and "configuring" in shown.stdout and "ready" in shown.stdout


def test_a_database_at_an_older_revision_is_refused_by_the_roles_until_upgraded(site):
    # Given a database at revision 0001 (the schema before 0002's indexes) with an environment in it
    engine, doppel, environ = site
    upgrade_to(engine, "0001")
    from core.registry import Registry
    Registry(engine).request(name="kept", request_id="test/kept", production="shop", ttl_seconds=60)

    # When the roles start, then the upgrade runs, then a role starts again
    refused = refusals(environ, {"worker": ROLES["worker"]})
    upgraded = doppel("db", "upgrade")
    listed = doppel("env", "list", "-o", "json", "--all")

    # Then they refused, naming the revision and the command; the upgrade moved it on with the row
    for role, result in refused.items():
        assert result.returncode == 2, (role, result.stderr)
        assert f"revision 0001, older than this Doppel's schema (revision {migrations.HEAD})" in result.stderr
        assert "`doppel db upgrade`" in result.stderr and "Traceback" not in result.stderr
    assert f"upgraded from revision 0001 to revision {migrations.HEAD}" in upgraded.stdout, upgraded.stderr
    assert [e["name"] for e in yaml.safe_load(listed.stdout)] == ["kept"], listed.stderr


def test_a_database_a_newer_doppel_upgraded_is_refused_with_what_to_do(site):
    engine, doppel, _environ = site
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    listed, upgraded = doppel("env", "list"), doppel("db", "upgrade")

    assert listed.returncode == 2 and "revision 9999, which this Doppel does not know" in listed.stderr
    assert upgraded.returncode == 2 and "newer than this Doppel's" in upgraded.stderr
    assert "Traceback" not in listed.stderr + upgraded.stderr


def test_a_brand_new_database_is_made_at_this_schema_by_the_first_command(site):
    engine, doppel, _environ = site
    assert migrations.status(engine).empty

    listed = doppel("env", "list")

    assert listed.returncode == 0, listed.stderr
    assert migrations.status(engine).revision == migrations.HEAD
    assert schema_differences(engine) == []


def test_no_part_makes_a_table_the_migrations_alone_make_them(site):
    engine, _doppel, _environ = site
    # Given a brand-new database, when every part that reads or writes a table is built on it (the scheduler's
    # job store started, as the active scheduler starts it)
    every_part(engine)
    # Then it is still empty: no table is made outside the migrations
    assert inspect(engine).get_table_names() == []
    # ... and the migrations make every table the code declares, APScheduler's too, as the code declares it
    migrations.upgrade(engine)
    every_part(engine)
    assert set(inspect(engine).get_table_names()) == {*migrations.all_metadata().tables, migrations.VERSION_TABLE}
    assert schema_differences(engine) == []


def test_the_revisions_listed_in_code_are_alembics_own_in_order():
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    walked = [s.revision for s in ScriptDirectory.from_config(config).walk_revisions()]
    assert tuple(reversed(walked)) == migrations.REVISIONS


# -- helpers --------------------------------------------------------------------------------------
def every_part(engine) -> None:
    """Build each part that reads or writes a table of the state database on `engine`, as a process does."""
    from bus.ledger import Ledger
    from bus.memory import MemoryBroker, ParkingTable
    from core.audit import AuditTrail
    from core.catalogue import Catalogue
    from core.dr_state import DrStates
    from core.logbook import Logbook
    from core.registry import Registry
    from gateway.approvals import Approvals
    from scheduler.control import Scheduler
    from scheduler.firing import Emitter
    from scheduler.lease import Lease
    from scheduler.store import FencedJobStore
    for part in (Registry, AuditTrail, DrStates, Catalogue, Logbook, Ledger, ParkingTable, Scheduler, Lease):
        part(engine)
    Approvals(engine, timeout_s=60)
    Emitter(MemoryBroker(), engine)
    FencedJobStore(engine, may_write=lambda: True).start(None, "default")


def upgrade_to(engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def schema_differences(engine) -> list:
    """What Alembic finds between the database and the tables the code declares (none: the migrations made them)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                migrations.all_metadata())
