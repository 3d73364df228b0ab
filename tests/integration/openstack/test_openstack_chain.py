"""What only OpenStack does in the environment chain: completion through its own notifications, expiry (backup,
then teardown) of an environment with a database, Swift behind Keystone as the store, a backup of production.

Clone, replay, a refused stack and reap are stated once for every driver in tests/integration/clouds.

Every test runs the real functions on the embedded bus against tests/services/openstack.sh's
control plane (Keystone, Glance, Placement, Nova with a fake hypervisor, neutron-server,
Heat, Cinder with the fake volume driver, Swift behind Keystone). Each test removes what
it made, so the next one (reap above all) sees a clean cloud.
"""
from __future__ import annotations

import json
import uuid
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from clouds.openstack.notifications import QUEUE, NotificationListener, tick_for
from clouds.openstack.resources import container_name, stack_name
from core.registry import READY
from tests.integration.openstack.conftest import PRODUCTION, Doppel, leftovers, unique_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.openstack


def env_server_and_volume(conn, env):
    stack = conn.orchestration.get_stack(conn.orchestration.find_stack(stack_name(env)).id)
    resources = {r.name: r.physical_resource_id for r in conn.orchestration.resources(stack)}
    return conn.compute.get_server(resources["app"]), conn.block_storage.get_volume(resources["data"])


def remove_env(doppel: Doppel, conn, env: str) -> None:
    doppel.remove(env, lambda name: leftovers(conn, name))


def remove_container(conn, name: str) -> None:
    """Delete a Swift container and its segments container, objects first (a test's backups)."""
    present = {c.name for c in conn.object_store.containers(prefix=name)}
    for container in (name, f"{name}_segments"):
        if container not in present:
            continue  # never made (no backup got that far)
        for obj in list(conn.object_store.objects(container)):
            conn.object_store.delete_object(obj, container=container, ignore_missing=True)
        conn.object_store.delete_container(container, ignore_missing=True)


@pytest.fixture
def orders_database(pg_server):
    """Production's database, with rows, on the test PostgreSQL, under the name production's stack outputs give.

    (The fake hypervisor runs no database server, so the stacks' `db_host` outputs name this one.)"""
    from clouds.databases import postgresql
    from tests.integration.openstack.conftest import PRODUCTION_DATABASE
    name = PRODUCTION_DATABASE
    postgresql.create(pg_server, name)
    with postgresql.connect(pg_server, name) as connection:
        connection.execute("CREATE TABLE public.orders (id integer PRIMARY KEY, item text NOT NULL)")
        connection.execute("INSERT INTO public.orders SELECT n, 'item ' || n FROM generate_series(1, 40) AS n")
    yield name
    for database in (name, f"{name}_restored"):
        postgresql.drop(pg_server, database)


@pytest.mark.postgresql
@pytest.mark.timeout(900)  # a hang detector: a clone, then a backup and a teardown, each minutes on the test bed
def test_completion_arrives_through_notifications_and_expiry_backs_up_then_leaves_nothing_but_the_backup(
        openstack_cloud, production_stack, notifications_url, tmp_path, monkeypatch, capsys, pg_server,
        orders_database):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    conn = openstack_cloud
    env_name = unique_env("notify")
    backups = f"doppel-it-backups-{env_name}"
    # Backups go to the test cloud's Swift; the production names a database, found where the stack's outputs say
    # (each env's stack names a database of its own there)
    database = {"kind": "postgresql", "name": "orders", "database": "{outputs.db_name}", "host": "{outputs.db_host}",
                "port": pg_server.port, "user": pg_server.user, "password_env": pg_server.password_env}
    doppel = Doppel(tmp_path, backups_container=backups, databases=[database], db_host=pg_server.host,
                    db_name="doppel_{env}_orders")
    own_database = f"doppel_{env_name}_orders"
    listener = NotificationListener(notifications_url)
    listener.drain(0.5)  # binds the queue, forgets what earlier tests caused
    heard = []

    def listen():
        for completion in listener.drain(1.0):
            heard.append(completion)
            from core.broker import event_message
            doppel.app.broker.publish([event_message(tick_for(completion))])
        doppel.app.broker.run_until_idle(timeout=60)

    try:
        # Given notifications are on and listened to, and no scheduler ticks at all
        doppel.request(env_name)
        env = doppel.settle(env_name, nudge=listen)

        # Then OpenStack's own notifications moved the chain: the stack's create.end among them
        assert env.state == READY, env.reason
        kinds = {c.event_type for c in heard}
        assert "orchestration.stack.create.end" in kinds, kinds
        assert any(c.target == env_name for c in heard)
        ticks = doppel.events("poll.tick")
        assert ticks and all(t.source == "doppel/listen-openstack" for t in ticks)
        server, volume = env_server_and_volume(conn, env_name)
        snapshot = next(e for e in doppel.events("snapshot.done") if e.data["env"] == env_name).data["snapshot"]
        image_id = next(c["location"] for c in snapshot["components"] if c["kind"] == "image")
        bundle = json.loads(conn.object_store.download_object("config.json", container=container_name(env_name)))
        password = bundle["settings"]["database.password"]

        # When it expires as its TTL would (`doppel env expire`): nothing made by hand, the real chain runs
        from doppel.cli import main
        config = tmp_path / "doppel.yaml"
        config.write_text(yaml.safe_dump(doppel.document))
        assert main(["--config", str(config), "env", "expire", env_name, "--timeout", "5m"]) == 0, \
            capsys.readouterr().err

        # Then it was backed up before it was deleted, and the registry says which backup
        expired = doppel.app.registry.latest(env_name)
        assert expired.state == "deleted"
        entries = doppel.app.backups.list(env_name)
        assert len(entries) == 1 and entries[0].reason == "expiry"
        backup_id = entries[0].id
        assert backup_id in expired.reason

        # And no image, snapshot, volume, server, stack or Swift container of the environment is left
        def nothing_left():
            left = leftovers(conn, env_name)
            if conn.block_storage.find_volume(volume.id, ignore_missing=True) is not None:
                left["volumes"] = [volume.id]
            if conn.compute.find_server(server.id, ignore_missing=True) is not None:
                left["servers"] = [server.id]
            return not left
        wait_for(nothing_left, 180, f"nothing of {env_name} left", interval=2)
        assert conn.image.find_image(image_id, ignore_missing=True) is None

        # But its backup is in Swift, and `doppel backup verify` finds it whole
        assert [o.name for o in conn.object_store.objects(backups)] == [
            f"{env_name}/{backup_id}/archive.tar.zst", f"{env_name}/{backup_id}/manifest.json"]
        manifest = doppel.app.backups.find(backup_id)
        dumped = {c.name: c for c in manifest.server_databases}
        assert dumped["orders"].tables == {"public.orders": 40} and dumped["orders"].database == own_database
        from tests.integration.databases.conftest import databases
        assert own_database not in databases(pg_server)  # dropped with the env
        capsys.readouterr()
        assert main(["--config", str(config), "backup", "verify", backup_id]) == 0, capsys.readouterr().err
        assert "verified (1 database(s) intact)" in capsys.readouterr().out

        # And it restores: the stack's template, parameters, outputs and the image it booted from, no credential
        restored = tmp_path / "restored"
        doppel.app.backups.restore(backup_id, restored, databases={"orders": {
            "kind": "postgresql", "server": pg_server.to_dict(), "database": f"{orders_database}_restored"}})
        from tests.integration.databases.conftest import query
        assert query(pg_server, f"{orders_database}_restored", "SELECT count(*) FROM public.orders") == [(40,)]
        described = {p.name: p.read_text() for p in (restored / "openstack").iterdir()}
        assert yaml.safe_load(described["template.yaml"])["resources"]["app"]["type"] == "OS::Nova::Server"
        parameters = json.loads(described["parameters.json"])
        assert parameters["generated"] == {"db_password": "{secrets.db_password}"}
        assert parameters["parameters"]["image"] == image_id
        assert [i["id"] for i in json.loads(described["images.json"])] == [image_id]
        assert json.loads(described["outputs.json"])["base_url"] == f"http://doppel-{env_name}.example.com"
        assert json.loads(described["bundle.json"])["settings"]["database.password"] == "{secrets.db_password}"
        assert not [name for name, text in described.items() if password in text]
    finally:
        listener.close()
        remove_env(doppel, conn, env_name)
        remove_container(conn, backups)
        doppel.close()
        from clouds.databases import postgresql
        postgresql.drop(pg_server, own_database)


@pytest.fixture
def notifications_url(openstack_cloud):
    base = Path(__import__("os").environ.get("DOPPEL_OPENSTACK_BASE", "/var/tmp/doppel-openstack"))
    return (base / "notifications.url").read_text().strip()


def listener_consumers(url: str) -> int:
    """How many consumers the notification listener's queue has, as RabbitMQ counts them (0 before it exists)."""
    import pika
    from pika.exceptions import ChannelClosedByBroker
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        try:
            return connection.channel().queue_declare(QUEUE, passive=True).method.consumer_count
        except ChannelClosedByBroker:
            return 0  # not declared yet


@pytest.mark.rabbitmq
def test_doppel_listen_openstack_publishes_a_tick_on_doppels_rabbitmq(
        openstack_cloud, notifications_url, amqp_url, tmp_path):
    import os
    import subprocess
    import sys

    import pika
    import yaml as _yaml
    conn = openstack_cloud
    config = tmp_path / "doppel.yaml"
    config.write_text(_yaml.safe_dump({"state_dir": str(tmp_path / "state")}))
    env = {**os.environ, "DOPPEL_AMQP_URL": amqp_url, "DOPPEL_CONFIG": str(config)}
    # Given the listener role runs as the Procfile would run it (consumers of its queue counted before it starts:
    # a listener of another test may still be there, and would not show that this one bound the queue)
    consumers_before = listener_consumers(notifications_url)
    listener = subprocess.Popen([sys.executable, "-m", "doppel", "listen", "openstack", "--url", notifications_url],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    name = unique_env("listen")
    try:
        # its queue is bound once it consumes from it (it binds, then consumes, on one channel): the notification
        # broker counts one more consumer
        wait_for(lambda: listener_consumers(notifications_url) > consumers_before, 60,
                 "the listener consuming its queue",
                 interval=0.5, explain=lambda: "" if listener.poll() is None else listener.communicate()[0])
        # When OpenStack finishes a stack named as Doppel names them
        template = {"heat_template_version": "2018-08-31",
                    "resources": {"rnd": {"type": "OS::Heat::RandomString"}}}
        stack = conn.orchestration.create_stack(name=stack_name(name), template=template)
        conn.orchestration.wait_for_status(stack, status="CREATE_COMPLETE", failures=["CREATE_FAILED"], wait=120)

        # Then a poll.tick for that environment reaches the poll function's queue on Doppel's RabbitMQ
        channel = pika.BlockingConnection(pika.URLParameters(amqp_url)).channel()

        def tick():
            method, _props, body = channel.basic_get("doppel.fn.poll", auto_ack=True)
            return body and json.loads(body)["data"]["target"] == name and json.loads(body)
        event = wait_for(tick, 60, "a poll.tick on Doppel's bus", interval=1)
        assert event["type"] == "poll.tick" and event["source"] == "doppel/listen-openstack"
    finally:
        listener.terminate()
        output = listener.communicate(timeout=10)[0]
        found = conn.orchestration.find_stack(stack_name(name))
        if found is not None:
            conn.orchestration.delete_stack(found)
            conn.orchestration.wait_for_delete(found, wait=120)
    assert listener.returncode in (0, -15), output


def test_swift_behind_keystone_serves_as_the_backup_store(openstack_cloud):
    from clouds.openstack import OpenStackDriver
    from tests.integration.openstack.conftest import production_entry
    # Given the openstack driver's default store: Swift, authenticated by Keystone from clouds.yaml
    store = OpenStackDriver({PRODUCTION: production_entry()}).object_store()
    key = f"test/{uuid.uuid4().hex}.bin"
    data = bytes(range(256)) * 4096  # 1 MiB
    try:
        # When an object goes in, then it comes back whole, is listed, and is deleted
        store.put_bytes(key, data)
        assert store.get_bytes(key) == data
        assert [info.key for info in store.list(prefix=key)] == [key]
        store.delete(key)
        assert store.list(prefix=key) == []
        # And it really is in the Keystone project's account, through the Swift API
        assert openstack_cloud.object_store.get_container_metadata("doppel-backups") is not None
    finally:
        store.delete(key, ignore_missing=True)


def test_a_backup_of_the_openstack_production_describes_its_stack_without_its_password(
        openstack_cloud, production_stack, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    conn = openstack_cloud
    backups = f"doppel-it-backups-{unique_env('prod')}"
    doppel = Doppel(tmp_path, backups_container=backups)
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(doppel.document))
    resources = {r.name: r.physical_resource_id for r in conn.orchestration.resources(production_stack)}
    base_image = conn.image.get_image(conn.compute.get_server(resources["app"]).image["id"])
    try:
        # When production is backed up by hand (`doppel backup now`)
        from doppel.cli import main
        assert main(["--config", str(config), "backup", "now", PRODUCTION]) == 0, capsys.readouterr().err
        backup_id = capsys.readouterr().out.split()[0]

        # Then the backup restores to production's stack: its template, its server and the image it booted from
        # (with Glance's checksums), its volume; its hidden password masked, nowhere in clear
        restored = tmp_path / "restored"
        doppel.app.backups.restore(backup_id, restored)
        described = {p.name: p.read_text() for p in (restored / "openstack").iterdir()}
        stack = json.loads(described["stack.json"])
        assert (stack["kind"], stack["id"], stack["servers"]) == ("production", production_stack.id,
                                                                  {"app": resources["app"]})
        images = json.loads(described["images.json"])
        assert [(i["id"], i["checksum"], i["os_hash_value"]) for i in images] == [
            (base_image.id, base_image.checksum, base_image.hash_value)]
        assert [v["id"] for v in json.loads(described["volumes.json"])] == [resources["data"]]
        assert yaml.safe_load(described["template.yaml"])["resources"]["data"]["type"] == "OS::Cinder::Volume"
        parameters = json.loads(described["parameters.json"])
        assert parameters["masked"] == ["db_password"] and parameters["parameters"]["flavor"] == "doppel.tiny"
        assert not [name for name, text in described.items() if "production-secret" in text]
    finally:
        remove_container(conn, backups)
        doppel.close()
