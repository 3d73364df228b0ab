"""What a backup of an OpenStack environment holds: the stack's description, and no credential in clear.

The connection is a small stand-in answering the calls backup_source makes (Heat's stack, template and
resources, Glance's images, Cinder's snapshots, the config bundle in Swift); the real OpenStack run, with
the archive written, verified and the environment torn down, is in tests/integration/openstack.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from clouds.factory import ProductionDriver
from clouds.local import LocalDriver
from clouds.openstack import OpenStackDriver
from clouds.openstack.resources import TAG_COMPONENT
from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT, DriverError, ResourceMissing

FRESH_PASSWORD = "fresh-generated-credential-Zq9"
PRODUCTIONS = {"shop": {
    "driver": "openstack", "cloud": "c", "stack": "shop-prod", "template": "/t.yaml",
    "parameters": {"image": "{snapshot.image.app}", "data_snapshot": "{snapshot.volume.data}", "flavor": "tiny",
                   "db_password": "{secrets.db_password}", "join_phrase": "{secrets.join_phrase}",
                   "config_url": "{config_url}"},
    "bundle": {"app.base_url": "{outputs.base_url}", "database.password": "{secrets.db_password}",
               "app.join": "{secrets.join_phrase}"},
    "clone": {"secrets": ["db_password", "join_phrase"]}}}
TAGS = {TAG_ENV: "dev", TAG_KEY: "req-1", TAG_PRODUCTION: "shop", TAG_SNAPSHOT: "snap-dev-1"}


class StandInCloud:
    """One environment `dev`: its stack, its snapshot's image and volume snapshot, its config bundle."""

    def __init__(self, status="UPDATE_COMPLETE"):
        stack = SimpleNamespace(
            id="stack-1", name="doppel-dev", status=status, status_reason="", created_at="2026-12-02T10:00:00Z",
            parameters={"image": "img-1", "data_snapshot": "vs-1", "flavor": "tiny", "db_password": "******",
                        "join_phrase": FRESH_PASSWORD, "config_url": "http://swift/doppel-dev/config.json",
                        "OS::stack_name": "doppel-dev", "doppel_env": "dev", "doppel_key": "req-1",
                        "doppel_production": "shop", "doppel_snapshot": "snap-dev-1"},
            outputs=[{"output_key": "base_url", "output_value": "http://doppel-dev.example.com"},
                     {"output_key": "admin_password", "output_value": FRESH_PASSWORD},
                     {"output_key": "db_host", "output_value": "10.1.2.3"}])
        template = {"heat_template_version": "2018-08-31", "resources": {"app": {"type": "OS::Nova::Server"}}}
        image = SimpleNamespace(id="img-1", name="snap-dev-1-app", status="active", checksum="md5sum",
                                hash_algo="sha512", hash_value="sha512sum", size=65536, disk_format="raw",
                                container_format="bare",
                                properties={**TAGS, TAG_COMPONENT: "app", "base_image_ref": "base-1"})
        snap = SimpleNamespace(id="vs-1", name="snap-dev-1-data", status="available", size=1, volume_id="vol-p",
                               metadata={**TAGS, TAG_COMPONENT: "data"})
        bundle = {"env": "dev", "settings": {"app.base_url": "http://doppel-dev.example.com",
                                             "database.password": FRESH_PASSWORD,
                                             "app.join": FRESH_PASSWORD}, "crons": False}
        resources = [SimpleNamespace(name="app", resource_type="OS::Nova::Server", physical_resource_id="srv-1",
                                     status="CREATE_COMPLETE")]
        self.orchestration = SimpleNamespace(
            find_stack=lambda name, ignore_missing=True: stack if name == "doppel-dev" else None,
            get_stack=lambda stack_id: stack,
            get=lambda path, raise_exc=False: SimpleNamespace(status_code=200, json=lambda: template, text=""),
            resources=lambda raw: resources)
        self.image = SimpleNamespace(images=lambda: [image], find_image=lambda i, ignore_missing=True: image)
        self.block_storage = SimpleNamespace(snapshots=lambda details=True: [snap])
        self.object_store = SimpleNamespace(download_object=lambda name, container: json.dumps(bundle).encode())


def backed_up_files(tmp_path, cloud) -> dict:
    driver = OpenStackDriver(PRODUCTIONS, connect=lambda *_: cloud, state_dir=tmp_path / "openstack")
    root = driver.backup_source("dev").root
    return {path.name: path.read_text() for path in (root / "openstack").iterdir()}


def test_an_environments_backup_holds_its_template_parameters_images_and_outputs(tmp_path):
    files = backed_up_files(tmp_path, StandInCloud())

    assert yaml.safe_load(files["template.yaml"])["resources"]["app"]["type"] == "OS::Nova::Server"
    parameters = json.loads(files["parameters.json"])
    assert parameters["parameters"]["image"] == "img-1" and parameters["parameters"]["flavor"] == "tiny"
    assert "OS::stack_name" not in parameters["parameters"]
    assert parameters["generated"] == {"db_password": "{secrets.db_password}", "join_phrase": "{secrets.join_phrase}"}
    images = json.loads(files["images.json"])
    assert images == [{"id": "img-1", "name": "snap-dev-1-app", "component": "app", "status": "active",
                       "checksum": "md5sum", "os_hash_algo": "sha512", "os_hash_value": "sha512sum", "size": 65536,
                       "disk_format": "raw", "container_format": "bare", "base_image_ref": "base-1", "server": None}]
    assert json.loads(files["volume_snapshots.json"])[0]["volume_id"] == "vol-p"
    assert json.loads(files["outputs.json"])["base_url"] == "http://doppel-dev.example.com"
    assert json.loads(files["resources.json"])[0]["physical_id"] == "srv-1"
    stack = json.loads(files["stack.json"])
    assert (stack["production"], stack["snapshot"], stack["id"]) == ("shop", "snap-dev-1", "stack-1")


def test_no_generated_credential_is_written_in_clear(tmp_path):
    files = backed_up_files(tmp_path, StandInCloud())

    assert not [name for name, text in files.items() if FRESH_PASSWORD in text]
    bundle = json.loads(files["bundle.json"])
    assert bundle["settings"]["database.password"] == "{secrets.db_password}"
    assert bundle["settings"]["app.join"] == "{secrets.join_phrase}"  # not secret-named: only its template says
    assert bundle["settings"]["app.base_url"] == "http://doppel-dev.example.com"
    assert json.loads(files["outputs.json"])["admin_password"] == "[redacted]"


def test_a_secret_in_doppels_environment_is_masked_wherever_heat_shows_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DOPPEL_SMTP_PASSWORD", "http://doppel-dev.example.com")  # the output's value, by chance

    files = backed_up_files(tmp_path, StandInCloud())

    assert "http://doppel-dev.example.com" not in files["outputs.json"]


def test_a_second_backup_replaces_the_first_description_whole(tmp_path):
    cloud = StandInCloud()
    driver = OpenStackDriver(PRODUCTIONS, connect=lambda *_: cloud, state_dir=tmp_path / "openstack")
    first = driver.backup_source("dev").root
    (first / "openstack" / "stale.json").write_text("{}")

    second = driver.backup_source("dev").root

    assert second == first and not (second / "openstack" / "stale.json").exists()
    assert sorted(p.name for p in second.parent.iterdir()) == ["dev"]
    driver.discard_backup_source("dev")
    assert not second.exists()


def test_an_environment_whose_stack_is_not_complete_is_not_backed_up(tmp_path):
    driver = OpenStackDriver(PRODUCTIONS, connect=lambda *_: StandInCloud(status="CREATE_IN_PROGRESS"),
                             state_dir=tmp_path)

    with pytest.raises(ResourceMissing, match="env dev is CREATE_IN_PROGRESS"):
        driver.backup_source("dev")
    with pytest.raises(ResourceMissing, match="env other has no stack"):
        driver.backup_source("other")


def test_a_mixed_estate_sends_an_openstack_environments_backup_to_the_openstack_driver(tmp_path):
    openstack = OpenStackDriver(PRODUCTIONS, connect=lambda *_: StandInCloud(), state_dir=tmp_path / "openstack")
    driver = ProductionDriver(LocalDriver(tmp_path / "local", {}), {"openstack": openstack}, {"shop": "openstack"})

    source = driver.backup_source("dev")

    assert source.root == tmp_path / "openstack" / "backup-sources" / "dev"
    assert (source.root / "openstack" / "template.yaml").is_file()


def with_database(**database) -> dict:
    entry = {"kind": "postgresql", "name": "orders", "database": "orders", "host": "{outputs.db_host}",
             "user": "doppel_backup", "password_env": "SHOP_BACKUP_PASSWORD", **database}
    return {"shop": {**PRODUCTIONS["shop"], "databases": [entry]}}


def test_a_database_the_production_names_is_dumped_from_where_the_envs_stack_says_it_is(tmp_path):
    productions = with_database(verify_on={"host": "10.9.9.9", "user": "doppel", "password_env": "PG_PASSWORD"})
    driver = OpenStackDriver(productions, connect=lambda *_: StandInCloud(), state_dir=tmp_path)

    source = driver.backup_source("dev")

    assert source.servers == ({"name": "orders", "kind": "postgresql", "database": "orders",
                               "server": {"engine": "postgresql", "user": "doppel_backup", "host": "10.1.2.3",
                                          "port": 5432, "password_env": "SHOP_BACKUP_PASSWORD"},
                               "restore_server": {"engine": "postgresql", "host": "10.9.9.9", "port": 5432,
                                                  "user": "doppel", "password_env": "PG_PASSWORD"}},)


def test_a_database_host_naming_an_output_the_stack_lacks_is_an_error_naming_the_outputs(tmp_path):
    driver = OpenStackDriver(with_database(host="{outputs.database_address}"), connect=lambda *_: StandInCloud(),
                             state_dir=tmp_path)

    with pytest.raises(DriverError, match="database orders of dev") as raised:
        driver.backup_source("dev")

    assert raised.value.permanent and "db_host" in str(raised.value) and "productions.shop.databases" in str(
        raised.value)


class StandInProduction:
    """Production's Heat stack shop-prod: a server booted from image base-1, a volume, a hidden password."""

    def __init__(self):
        stack = SimpleNamespace(id="prod-1", name="shop-prod", status="CREATE_COMPLETE", created_at="2026-01-01",
                                parameters={"image": "base-1", "flavor": "tiny", "db_password": "******"},
                                outputs=[{"output_key": "db_host", "output_value": "10.0.0.7"}])
        resources = [SimpleNamespace(name="app", resource_type="OS::Nova::Server", physical_resource_id="srv-p",
                                     status="CREATE_COMPLETE"),
                     SimpleNamespace(name="data", resource_type="OS::Cinder::Volume", physical_resource_id="vol-p",
                                     status="CREATE_COMPLETE")]
        image = SimpleNamespace(id="base-1", name="debian", status="active", checksum="md5", hash_algo="sha512",
                                hash_value="sha", size=1024, disk_format="qcow2", container_format="bare",
                                properties={})
        self.orchestration = SimpleNamespace(
            find_stack=lambda name, ignore_missing=True: stack if name == "shop-prod" else None,
            get_stack=lambda stack_id: stack, resources=lambda raw: resources,
            get=lambda path, raise_exc=False: SimpleNamespace(status_code=200, json=lambda: {"resources": {}}))
        self.compute = SimpleNamespace(get_server=lambda server_id: SimpleNamespace(image={"id": "base-1"}))
        self.image = SimpleNamespace(find_image=lambda i, ignore_missing=True: image)
        self.block_storage = SimpleNamespace(get_volume=lambda volume_id: SimpleNamespace(
            id=volume_id, size=10, status="in-use", volume_type="ssd"))


def test_a_productions_backup_describes_its_stack_its_servers_images_and_volumes_and_dumps_its_database(tmp_path):
    driver = OpenStackDriver(with_database(), connect=lambda *_: StandInProduction(), state_dir=tmp_path)

    source = driver.backup_source("shop")

    folder = source.root / "openstack"
    assert json.loads((folder / "stack.json").read_text())["servers"] == {"app": "srv-p"}
    assert json.loads((folder / "images.json").read_text())[0]["os_hash_value"] == "sha"
    assert json.loads((folder / "volumes.json").read_text()) == [
        {"name": "data", "id": "vol-p", "size_gb": 10, "status": "in-use", "volume_type": "ssd"}]
    assert json.loads((folder / "parameters.json").read_text())["masked"] == ["db_password"]
    assert source.servers[0]["server"]["host"] == "10.0.0.7"
