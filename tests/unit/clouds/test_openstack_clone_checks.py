"""What an OpenStack clone checks before env.ready: crons off on every server, and an env database that is never
production's own; and what the config accepts for it.

The connection is a small stand-in answering the calls the checks make; the real chain (restore, anonymisation,
teardown) runs against the test bed in tests/integration/openstack/test_openstack_clone_databases.py.
"""
from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from clouds.databases.copies import locate, same_database
from clouds.openstack import OpenStackDriver
from core.cloud import DriverError, Stack
from schemas.base import ProductionConfigError
from schemas.production import load_productions

URL = "http://swift/v1/AUTH_p/doppel-dev/config.json"
SHOP = {"driver": "openstack", "cloud": "c", "stack": "shop-prod", "template": "/t.yaml",
        "databases": [{"kind": "postgresql", "name": "orders", "database": "{outputs.db_name}",
                       "host": "{outputs.db_host}", "user": "doppel", "password_env": "SHOP_PG"}],
        "clone": {"anonymise": [{"database": "orders", "table": "customer", "column": "email", "method": "email"}]}}


class StandInCloud:
    """Env `dev`'s stack with two servers, `app` and `worker`, and the bundle it was given."""

    def __init__(self, worker_metadata: dict, worker_user_data: str | None = None, crons=False):
        servers = {"srv-app": SimpleNamespace(metadata={"config_url": URL}, user_data=None),
                   "srv-worker": SimpleNamespace(metadata=worker_metadata, user_data=worker_user_data)}
        resources = [SimpleNamespace(name=name, resource_type="OS::Nova::Server", physical_resource_id=f"srv-{name}")
                     for name in ("app", "worker")]
        resources.append(SimpleNamespace(name="data", resource_type="OS::Cinder::Volume", physical_resource_id="v"))
        self.orchestration = SimpleNamespace(get_stack=lambda stack_id: SimpleNamespace(id=stack_id),
                                             resources=lambda raw: resources)
        self.compute = SimpleNamespace(get_server=lambda server_id: servers[server_id])
        self.object_store = SimpleNamespace(
            download_object=lambda name, container: json.dumps({"crons": crons}).encode(),
            get_endpoint=lambda: "http://swift/v1/AUTH_p")


def check(cloud) -> None:
    driver = OpenStackDriver({"shop": SHOP}, connect=lambda *_: cloud)
    driver._check_crons_off(cloud, "dev", Stack(id="stack-1", name="doppel-dev", env="dev", status="CREATE_COMPLETE"))


def test_crons_off_is_checked_on_every_server_of_the_stack():
    # A server that does not carry the bundle's URL would run the crontab of production's image: refused, named
    with pytest.raises(DriverError) as caught:
        check(StandInCloud(worker_metadata={"role": "worker"}))
    assert "server(s) worker do not carry" in str(caught.value) and caught.value.permanent
    # Carried in its metadata, or in its user data, it reads the bundle that turns crons off
    check(StandInCloud(worker_metadata={"config_url": URL}))
    check(StandInCloud(worker_metadata={}, worker_user_data=base64.b64encode(
        f"#cloud-config\nruncmd: [doppel-boot {URL}]\n".encode()).decode()))
    # A bundle that does not say crons are off is not passed either
    with pytest.raises(DriverError, match="does not say crons are off"):
        check(StandInCloud(worker_metadata={"config_url": URL}, crons=True))


def test_an_env_database_at_productions_address_is_production_itself():
    database = load_productions({"shop": SHOP})["shop"]["databases"][0]
    production = locate(database, {"db_host": "127.0.0.1", "db_name": "orders"}, "shop", "shop")
    # The same database by another name of the same address is production's own; another database is not
    assert same_database(locate(database, {"db_host": "localhost", "db_name": "orders"}, "dev", "shop"), production)
    assert not same_database(locate(database, {"db_host": "127.0.0.1", "db_name": "doppel_dev"}, "dev", "shop"),
                             production)
    # A stack that does not say where its database is (it failed before its outputs) is named in the error
    with pytest.raises(DriverError, match="needs outputs.db_name"):
        locate(database, {"db_host": "127.0.0.1", "db_name": None}, "dev", "shop")


@pytest.mark.parametrize("change, message", [
    ({"clone": {"anonymise": [{"database": "billing", "table": "t", "column": "c", "method": "email"}]}},
     "'billing' is not in databases: (its names: orders)"),
    ({"databases": [{**SHOP["databases"][0], "database": "{secrets.db}"}]}, "may use only {outputs.NAME}"),
    ({"databases": [{**SHOP["databases"][0], "kind": "oracle"}]}, "must be one of postgresql, mariadb"),
])
def test_anonymise_rules_and_databases_of_an_openstack_production_are_checked(change, message):
    with pytest.raises(ProductionConfigError) as caught:
        load_productions({"shop": {**SHOP, **change}})
    assert message in str(caught.value)


def test_an_openstack_production_takes_anonymise_rules_and_engine_ports():
    loaded = load_productions({"shop": {**SHOP, "databases": [*SHOP["databases"], {
        "kind": "mariadb", "name": "shop", "database": "shop", "host": "{outputs.db_host}", "user": "doppel"}]}})
    assert [d["port"] for d in loaded["shop"]["databases"]] == [5432, 3306]
    assert loaded["shop"]["clone"]["anonymise"][0]["method"] == "email"
    assert load_productions(loaded) == loaded  # loading is idempotent


class NotFound(Exception):
    status_code = 404


def polled_cloud(dumped: bool):
    """Production `shop`'s volume snapshot for env `dev`, available; the database's dump in Swift or not. It has
    no production stack outputs to give: a poll that tried to dump would fail."""
    from clouds.openstack.resources import TAG_COMPONENT
    from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT, resource_name
    snapshot_id = resource_name("snap", "dev", "k")
    tags = {TAG_ENV: "dev", TAG_KEY: "k", TAG_PRODUCTION: "shop", TAG_SNAPSHOT: snapshot_id, TAG_COMPONENT: "data"}
    snap = SimpleNamespace(id="vs-1", name=f"{snapshot_id}-data", status="available", size=1, metadata=tags,
                           created_at="2026-12-02T10:00:00Z", volume_id="vol-1")

    def head(name, container):
        if dumped and name == f"snapshot/{snapshot_id}/orders.dump" and container == "doppel-dev":
            return SimpleNamespace(content_length=1234)
        raise NotFound(name)

    def download(name, container):
        raise NotFound(name)
    volume = SimpleNamespace(name="data", resource_type="OS::Cinder::Volume", physical_resource_id="vol-1")
    return snapshot_id, SimpleNamespace(
        image=SimpleNamespace(images=lambda: []),
        block_storage=SimpleNamespace(snapshots=lambda details=True: [snap]),
        orchestration=SimpleNamespace(find_stack=lambda name, ignore_missing=True: SimpleNamespace(id="p"),
                                      resources=lambda stack: [volume]),
        object_store=SimpleNamespace(get_object_metadata=head, download_object=download))


@pytest.mark.parametrize("dumped, status", [(False, "IN_PROGRESS"), (True, "COMPLETE")])
def test_a_poll_waits_for_the_snapshot_functions_dump_and_never_starts_one(dumped, status):
    snapshot_id, cloud = polled_cloud(dumped)
    driver = OpenStackDriver({"shop": SHOP}, connect=lambda *_: cloud)

    found = driver.snapshot_status(snapshot_id)

    assert found.status == status, found.status_reason
    assert [(c.kind, c.name) for c in found.components] == [("database", "orders")] * dumped + [("volume", "data")]


AWS_SHOP = {"driver": "aws", "region": "eu-west-1", "stack": "shop-prod", "template": "/t.json",
            "databases": SHOP["databases"], "clone": {**SHOP["clone"], "secrets": ["db_password"]}}
OWNER = {"user": "{outputs.db_user}", "password": "{secrets.db_password}"}


@pytest.mark.parametrize("entry", [{**SHOP, "clone": AWS_SHOP["clone"]}, AWS_SHOP], ids=["openstack", "aws"])
@pytest.mark.parametrize("owner, kind, message", [
    ({**OWNER, "password": "{secrets.app_password}"}, "postgresql", "uses {secrets.app_password}, which is not "
                                                                    "declared; add it to clone.secrets"),
    ({**OWNER, "password": "hunter2"}, "postgresql", 'must be "{secrets.NAME}"'),
    (OWNER, "mariadb", "made on PostgreSQL only"),
])
def test_an_envs_own_database_account_takes_only_a_password_generated_for_it(entry, owner, kind, message):
    databases = [{**SHOP["databases"][0], "kind": kind, "owner": owner}]
    with pytest.raises(ProductionConfigError) as caught:
        load_productions({"shop": {**entry, "databases": databases}})
    assert message in str(caught.value)
    # and with a declared one, on PostgreSQL, it is taken; an aws production's dumps wait in doppel-envs
    loaded = load_productions({"shop": {**entry, "databases": [{**SHOP["databases"][0], "owner": OWNER}]}})
    assert loaded["shop"]["databases"][0]["owner"] == OWNER
    assert loaded["shop"].get("bucket", "doppel-envs") == "doppel-envs"
