"""An OpenStack environment's own databases, by the real chain on the test bed: production's PostgreSQL and MariaDB
dumped at snapshot time, restored into the env's databases where its stack's outputs say, anonymised before
env.ready with every foreign key joining, refused when a personal column has no rule, and dropped when the env
expires.

The fake hypervisor runs no database server, so production's stack and each env's stack name databases on the
test bed's PostgreSQL and MariaDB (127.0.0.1): production's `doppel_it_shop_<session>`, an env's
`doppel_<env>_rentals` (its stack's `db_name` output, from the `{env}` the production's parameters give it).
"""
from __future__ import annotations

import json

import pytest
import yaml

from clouds.databases import mariadb, postgresql
from clouds.openstack.resources import container_name
from core.registry import FAILED, READY
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import databases, make_rental_shop, query
from tests.integration.openstack.conftest import PRODUCTION_DATABASE, Doppel, leftovers, unique_env
from tests.integration.openstack.test_openstack_chain import remove_container, remove_env
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.openstack, pytest.mark.postgresql, pytest.mark.mariadb]


@pytest.fixture
def production_databases(pg_server, maria_server):
    """Production's rental shop on both engines, under the name production's stack outputs give."""
    servers = (pg_server, maria_server)
    for server in servers:
        make_rental_shop(server, PRODUCTION_DATABASE)
    yield servers
    for server in servers:
        (mariadb if server.engine == "mariadb" else postgresql).drop(server, PRODUCTION_DATABASE)


def entry(server, name: str) -> dict:
    """A `databases:` entry: production's database and each env's own, where the stacks' outputs say."""
    return {"kind": server.engine, "name": name, "database": "{outputs.db_name}", "host": "{outputs.db_host}",
            "port": server.port, "user": server.user, "password_env": server.password_env}


def rules(name: str, leave_out=()) -> list[dict]:
    return [{"database": name, **rule} for rule in rental_shop.RULES
            if (rule["table"], rule["column"]) not in leave_out]


def personal_values(server, database) -> dict[tuple[str, str], set]:
    return {(table, column): {row[0] for row in query(server, database, f"SELECT {column} FROM {table} "
                                                                        f"WHERE {column} IS NOT NULL")}
            for table, column in rental_shop.PERSONAL}


def orphans(server, database) -> dict[str, int]:
    """Rows of each foreign key's table whose key finds no row in the table it references."""
    found = {}
    for child, columns, parent, referenced in rental_shop.FOREIGN_KEYS:
        on = " AND ".join(f"c.{a} = p.{b}" for a, b in zip(columns, referenced))
        present = " AND ".join(f"c.{a} IS NOT NULL" for a in columns)
        found[f"{child}({', '.join(columns)})"] = query(
            server, database, f"SELECT count(*) FROM {child} c WHERE {present} AND NOT EXISTS (SELECT 1 FROM "
                              f"{parent} p WHERE {on})")[0][0]
    return found


@pytest.mark.timeout(900)  # a hang detector: two clones side by side, then a backup and a teardown
def test_an_openstack_clones_databases_hold_no_production_personal_data_join_and_go_with_it(
        openstack_cloud, production_stack, production_databases, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    conn = openstack_cloud
    pg, maria = production_databases
    env_name, leaky_name = unique_env("anon"), unique_env("leaky")
    backups = f"doppel-it-backups-{env_name}"
    own = {"db_host": pg.host, "db_name": "doppel_{env}_rentals"}  # each env's stack names a database of its own
    # Given a production whose stack says where its PostgreSQL and MariaDB databases are, with rules for both
    doppel = Doppel(tmp_path / "safe", backups_container=backups, databases=[entry(pg, "rentals"),
                    entry(maria, "maria")], anonymise=rules("rentals") + rules("maria"), **own)
    # and the same production described with no rule for address.phone, cloned side by side
    leaky = Doppel(tmp_path / "leaky", databases=[entry(pg, "rentals")],
                   anonymise=rules("rentals", leave_out={("address", "phone")}), **own)
    before = {server.engine: personal_values(server, PRODUCTION_DATABASE) for server in (pg, maria)}
    try:
        # When an environment of each is requested through Doppel, as a user would
        doppel.request(env_name)
        leaky.request(leaky_name)
        both = lambda: (doppel.tick(), leaky.tick())  # each Doppel's poller moves its own chain on, side by side
        env, failed = doppel.settle(env_name, nudge=both), leaky.settle(leaky_name, nudge=both)

        # Then the environment is ready with databases of its own, named by its stack's outputs
        assert env.state == READY, env.reason
        clone = env.endpoints["db_name"]
        assert clone == f"doppel_{env_name}_rentals" and env.endpoints["db_host"] == pg.host
        snapshot = next(e for e in doppel.events("snapshot.done") if e.data["env"] == env_name).data["snapshot"]
        assert {c["name"] for c in snapshot["components"] if c["kind"] == "database"} == {"rentals", "maria"}
        for server in (pg, maria):
            # holding production's rows, as of the snapshot
            assert query(server, clone, "SELECT count(*) FROM rental")[0][0] == 120
            # with no production email, name, street or phone left in any ruled or joined column
            for key, values in personal_values(server, clone).items():
                assert values and not values & before[server.engine][key], (server.engine, key)
            # and every foreign key joining, the same customer the same fake everywhere
            assert set(orphans(server, clone).values()) == {0}, (server.engine, orphans(server, clone))
            assert query(server, clone, "SELECT count(*) FROM rental r JOIN customer c USING (customer_id) "
                                        "WHERE r.customer_email <> c.email")[0][0] == 0
            # while production is as it was
            assert personal_values(server, PRODUCTION_DATABASE) == before[server.engine]
        # No dump of production is left in Swift, and no production value in any event of the chain
        assert not [o.name for o in conn.object_store.objects(container_name(env_name))
                    if o.name.startswith("snapshot/")]
        emails = before["postgresql"][("customer", "email")]
        said = json.dumps([e.data for e in doppel.events() if e.data.get("env") == env_name])
        assert not [email for email in emails if email in said]

        # And the one without a rule for a personal column failed, naming it, and kept no copy
        assert failed.state == FAILED
        assert "address.phone (phone)" in failed.reason and "no anonymise rule" in failed.reason, failed.reason
        assert f"doppel_{leaky_name}_rentals" not in databases(pg)

        # When the environment expires, the real chain backs it up and tears it down
        from doppel.cli import main
        config = tmp_path / "doppel.yaml"
        config.write_text(yaml.safe_dump(doppel.document))
        assert main(["--config", str(config), "env", "expire", env_name, "--timeout", "5m"]) == 0, \
            capsys.readouterr().err

        # Then its backup holds its anonymised databases, and nothing of it is left: no database on either server
        assert doppel.app.registry.latest(env_name).state == "deleted"
        manifest = doppel.app.backups.find(doppel.app.backups.list(env_name)[0].id)
        assert {c.name: next(rows for table, rows in c.tables.items() if table.split(".")[-1] == "rental")
                for c in manifest.server_databases} == {"rentals": 120, "maria": 120}
        assert clone not in databases(pg) and clone not in databases(maria)
        wait_for(lambda: not leftovers(conn, env_name), 180, f"env {env_name} gone", interval=2)
        # (the failed one's stack, deleted by its compensation, went meanwhile)
        wait_for(lambda: not leftovers(conn, leaky_name), 180, f"env {leaky_name} gone", interval=2)
    finally:
        for instance, name in ((doppel, env_name), (leaky, leaky_name)):
            remove_env(instance, conn, name)
            instance.close()
        remove_container(conn, backups)
        for server in (pg, maria):
            for name in (env_name, leaky_name):
                (mariadb if server.engine == "mariadb" else postgresql).drop(server, f"doppel_{name}_rentals")
