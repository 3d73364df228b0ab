"""A production's file tree on the real test bed (issue 12, point 7): Heat's outputs say where the servers
are, `doppel backup now` puts the tree in Swift, and it is restored into a DR stack's server, which keeps
production's host key through user data; a DR server made without it is refused.

The servers are sshd processes on 127.0.0.1 (tests/support/sshd.py): Nova's fake hypervisor boots
nothing that could run one. What OpenStack makes is real: the stacks, their outputs, and the server's
user data (a cloud-config) carrying the host key pair, which the DR sshd is started with. The second test
runs the DR target's own verbs (a sync copying the image into the DR project of RegionTwo, the DR stack, the
restore, the failback's backup and restore home). Cost: five stacks of one fake server each (seconds each),
an image copy of 64 KiB and three backups to Swift; 12-13 s for the first test and 12-24 s for the second here.
"""
from __future__ import annotations

import base64
import io
import json
import uuid

import pytest
import yaml

from clouds.openstack.file_trees import FOLDER, HostKeyChanged, public_key
from clouds.openstack.resources import stack_name
from clouds.openstack.template import render_parameters
from tests.integration.openstack.conftest import CLOUD, FLAVOR, HERE
from tests.integration.openstack.test_openstack_chain import remove_container
from tests.support.sshd import SshServer, free_port, sshd_available, tree_files
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.openstack, pytest.mark.ssh,
              pytest.mark.skipif(not sshd_available(), reason="run tests/services/sshd.sh")]
TEMPLATE = HERE / "templates" / "file_server.yaml"


def make_stack(conn, name: str, parameters: dict) -> dict:
    """A file-server stack (one server, booted from the test base image), waited for; its outputs."""
    image = conn.image.find_image("doppel-it-base")
    if image is None or image.status != "active":
        image = conn.image.create_image(name="doppel-it-base", disk_format="raw", container_format="bare",
                                        data=io.BytesIO(b"\0" * 65536), allow_duplicates=True)
        wait_for(lambda: conn.image.get_image(image.id).status == "active", 60, "base image active", interval=1.0)
    conn.compute.find_flavor(FLAVOR) or conn.compute.create_flavor(name=FLAVOR, ram=64, vcpus=1, disk=1)
    stack = conn.orchestration.create_stack(name=name, template=yaml.safe_load(TEMPLATE.read_text()),
                                            parameters={"image": image.id, "flavor": FLAVOR, **parameters})
    conn.orchestration.wait_for_status(stack, status="CREATE_COMPLETE", failures=["CREATE_FAILED"], interval=1,
                                       wait=180)
    return {o["output_key"]: o["output_value"] for o in conn.orchestration.get_stack(stack.id).outputs}


def host_key_from_user_data(conn, server_id: str, folder) -> object:
    """Write the key pair the server's user data (its cloud-config) carries where sshd reads it, as cloud-init
    would; the user data is read back from Nova (an admin's view, microversion 2.3)."""
    server = conn.compute.get(f"/servers/{server_id}", microversion="2.3").json()["server"]
    user_data = base64.b64decode(server["OS-EXT-SRV-ATTR:user_data"]).decode()
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    folder.mkdir(parents=True)
    key = folder / "ssh_host_ed25519_key"
    key.write_text(config["ssh_keys"]["ed25519_private"])
    key.chmod(0o600)
    (folder / "ssh_host_ed25519_key.pub").write_text(config["ssh_keys"]["ed25519_public"] + "\n")
    return key


@pytest.mark.timeout(600)  # a hang detector: three small stacks and one backup on the test bed
def test_a_tree_backed_up_from_production_restores_into_a_dr_server_that_kept_its_host_key_through_user_data(
        openstack_cloud, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    from doppel.app import App
    from doppel.cli import main
    from doppel.config import parse_config
    conn = openstack_cloud
    session = uuid.uuid4().hex[:6]
    production, dr_env, bare_env = f"files-{session}", f"files-dr-{session}", f"files-bare-{session}"
    backups = f"doppel-it-backups-{production}"
    mount_point = tmp_path / "srv" / "uploads"
    state = tmp_path / "state"
    from clouds.openstack.file_trees import doppel_identity
    identity = doppel_identity(state / "openstack")
    prod = SshServer(tmp_path / "prod", authorized_key=public_key(identity), mount_point=mount_point)
    (prod.root / "2026").mkdir()
    (prod.root / "2026" / "photo.jpg").write_bytes(b"\xff\xd8" * 5000)
    (prod.root / "index.html").write_text("<h1>shop</h1>")
    monkeypatch.setenv("SHOP_UPLOADS_HOST_KEY", prod.host_key.read_text())
    entry = {"driver": "openstack", "cloud": CLOUD, "region": "RegionOne", "stack": f"doppel-it-{production}",
             "template": str(TEMPLATE),
             "parameters": {"host_key": "{host_key.uploads}", "host_key_public": "{host_key.uploads.public}"},
             "files": [{"path": str(mount_point), "host": "{outputs.app_ip}", "port": "{outputs.ssh_port}",
                        "user": "root", "host_key": prod.public_host_key, "host_key_env": "SHOP_UPLOADS_HOST_KEY"}]}
    document = {"state_dir": str(state), "productions": {production: entry},
                "backups": {"store": {"type": "swift", "container": backups, "cloud": CLOUD}}}
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(document))
    app = App(parse_config(document, None), role="test")
    driver = app.cloud
    made = [entry["stack"]]
    servers = [prod]
    try:
        # Given production's stack, whose outputs say where its server answers SSH, made with its host key pair
        spec = driver.drivers["openstack"].productions[production]
        from clouds.openstack.file_trees import host_key_values
        pair = host_key_values(spec, production)
        make_stack(conn, entry["stack"], {"ssh_port": prod.port, "host_key": pair["host_key.uploads"],
                                          "host_key_public": pair["host_key.uploads.public"]})

        # When production is backed up (`doppel backup now`) into Swift
        assert main(["--config", str(config), "backup", "now", production]) == 0, capsys.readouterr().err
        backup_id = capsys.readouterr().out.split()[0]

        # And a DR stack is made from the template with the parameters Doppel renders for it: the pinned pair
        # goes into its user data, and its server (an sshd) boots with the host key that user data carries
        parameters = render_parameters(spec["parameters"], images={}, volume_snapshots={}, secrets={},
                                       config_url="", env=dr_env, production=production,
                                       host_keys=host_key_values(spec, production, env=dr_env))
        dr_port = free_port()
        outputs = make_stack(conn, stack_name(dr_env), {**parameters, "ssh_port": dr_port})
        made.append(stack_name(dr_env))
        dr = SshServer(tmp_path / "dr", authorized_key=public_key(identity), mount_point=mount_point, port=dr_port,
                       host_key=host_key_from_user_data(conn, outputs["server_id"], tmp_path / "dr-keys"))
        servers.append(dr)
        restored = tmp_path / "restored"
        app.backups.restore(backup_id, restored)
        copied = driver.restore_file_trees(dr_env, restored, production=production)

        # Then the DR server, found through its own stack's outputs, holds production's tree
        assert copied == ["uploads"] and tree_files(dr.root) == tree_files(prod.root)
        assert dr.public_host_key.split()[:2] == prod.public_host_key.split()[:2]
        # And the backup's description of production's stack holds its private host key masked (hidden in Heat)
        described = (restored / "openstack" / "parameters.json").read_text()
        assert "PRIVATE KEY" not in described and "host_key" in json.loads(described)["masked"]
        assert sorted(p.name for p in restored.iterdir()) == [FOLDER, "openstack"]

        # But a DR server made without the pair in its user data presents a key of its own and is refused
        bare = SshServer(tmp_path / "bare", authorized_key=public_key(identity), mount_point=mount_point)
        servers.append(bare)
        make_stack(conn, stack_name(bare_env), {"ssh_port": bare.port})
        made.append(stack_name(bare_env))
        refusal = (rf"refused env {bare_env}'s server 127.0.0.1:{bare.port} .*presented host key SHA256:\S+, "
                   r"but ssh-ed25519 SHA256:\S+ is pinned")
        with pytest.raises(HostKeyChanged, match=refusal):
            driver.restore_file_trees(bare_env, restored, production=production)
        assert tree_files(bare.root) == {}
    finally:
        for server in servers:
            server.stop()
        for name in made:
            conn.orchestration.delete_stack(conn.orchestration.find_stack(name, ignore_missing=True) or name,
                                            ignore_missing=True)
        remove_container(conn, backups)
        app.close()



def dr_images_of(conn, production: str) -> list:
    return [i for i in conn.image.images(owner=conn.current_project_id)
            if (i.properties or {}).get("doppel-production") == production]


@pytest.mark.timeout(600)  # a hang detector: two small stacks, an image copy and one backup on the test bed
def test_a_failover_restores_the_tree_into_the_dr_server_a_failback_brings_it_home_a_changed_key_is_refused(
        openstack_cloud, tmp_path, monkeypatch):
    """The DR target's verbs as a failover and a failback run them (sync, stack, restore; back up the DR stack,
    restore home) for a production with `files:`, into the DR project of RegionTwo: the DR stack's server, found
    through its outputs and booted with the pinned pair from user data, gets the tree, and what was written there
    comes home; the same server answering with another host key is refused, nothing copied."""
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    import openstack

    from clouds.openstack.file_trees import doppel_identity, host_key_values
    from core.dr_cloud import failover_plan
    from doppel.app import App
    from doppel.config import parse_config
    from tests.integration.openstack.test_dr_openstack import DR_CLOUD, REGION2
    conn, dr_conn = openstack_cloud, openstack.connect(cloud=DR_CLOUD)
    session = uuid.uuid4().hex[:6]
    production, dr_env = f"files-{session}", f"files-dr-{session}"
    backups, dr_container = f"doppel-it-backups-{production}", f"doppel-it-dr-{production}"
    mount_point, state = tmp_path / "srv" / "uploads", tmp_path / "state"
    identity = doppel_identity(state / "openstack")
    prod = SshServer(tmp_path / "prod", authorized_key=public_key(identity), mount_point=mount_point)
    servers = [prod]
    (prod.root / "2026").mkdir()
    (prod.root / "2026" / "photo.jpg").write_bytes(b"\xff\xd8" * 5000)
    (prod.root / "index.html").write_text("<h1>shop</h1>")
    monkeypatch.setenv("SHOP_UPLOADS_HOST_KEY", prod.host_key.read_text())
    dr_port = free_port()
    target = {"driver": "openstack", "env": dr_env, "cloud": DR_CLOUD, "region": REGION2,
              "container": dr_container, "parameters": {"ssh_port": dr_port}}
    entry = {"driver": "openstack", "cloud": CLOUD, "region": "RegionOne", "stack": f"doppel-it-{production}",
             "template": str(TEMPLATE),
             "parameters": {"image": "{snapshot.image.app}", "flavor": FLAVOR, "host_key": "{host_key.uploads}",
                            "host_key_public": "{host_key.uploads.public}"},
             "files": [{"path": str(mount_point), "host": "{outputs.app_ip}", "port": "{outputs.ssh_port}",
                        "user": "root", "host_key": prod.public_host_key, "host_key_env": "SHOP_UPLOADS_HOST_KEY"}]}
    document = {"state_dir": str(state), "productions": {production: entry},
                "backups": {"store": {"type": "swift", "container": backups, "cloud": CLOUD}},
                "dr": {production: {"target": target, "backup": "newest"}}}
    app = App(parse_config(document, None), role="test")
    driver = app.cloud
    try:
        # Given production's stack with its host key pair, backed up, and synced to the DR project
        pair = host_key_values(driver.drivers["openstack"].productions[production], production)
        make_stack(conn, entry["stack"], {"ssh_port": prod.port, "host_key": pair["host_key.uploads"],
                                          "host_key_public": pair["host_key.uploads.public"]})
        backup_id = app.backups.back_up(production, driver.backup_source(production), reason="manual").backup_id
        driver.dr_copy_images(production, target)
        driver.dr_copy_backup(production, target, backup_id, app.backups.store)
        # (`doppel dr failover --dry-run` says the trees go onto the DR stack's servers)
        plan = {step["step"]: step for step in failover_plan(app.deps, production, app.config["dr"][production])}
        assert plan["restore"]["detail"] == (f"{backup_id} from swift:{dr_container} into the DR stack's databases "
                                             "and files uploads onto its servers (rsync, host keys pinned)")

        # When a failover makes the DR stack and its server boots with the key pair its user data carries
        driver.dr_stack(production, target, f"failover-{session}")
        stack = wait_for(lambda: (lambda s: s if s is not None and s.complete else None)(
            driver.dr_stack(production, target, None)), 180, "the DR stack complete", interval=1)
        assert stack.outputs["ssh_port"] in (dr_port, str(dr_port))
        dr = SshServer(tmp_path / "dr", authorized_key=public_key(identity), mount_point=mount_point, port=dr_port,
                       host_key=host_key_from_user_data(conn, stack.outputs["server_id"], tmp_path / "dr-keys"))
        servers.append(dr)
        # And the backup is restored into the DR stack
        restored = driver.dr_restore(production, target, backup_id)

        # Then the DR stack's server holds production's tree, copied over SSH with production's pinned key
        assert restored == ["files uploads"]
        assert tree_files(dr.root) == tree_files(prod.root) != {}

        # When a file is written in DR and the failback carries the DR stack's data home
        (dr.root / "2026" / "written-in-dr.txt").write_text("an order's attachment")
        (dr.root / "index.html").write_text("<h1>shop, served from DR</h1>")
        home = app.backups.back_up(production, driver.dr_backup_source(production, target), reason="failback")
        driver.dr_restore_home(production, home.backup_id, lambda into, databases: app.backups.restore(
            home.backup_id, into, databases=databases))
        # Then production's server holds the tree as DR left it
        assert tree_files(prod.root) == tree_files(dr.root)
        assert (prod.root / "2026" / "written-in-dr.txt").read_text() == "an order's attachment"

        # But when that server answers with another host key (re-created without the pair), it is refused
        dr.stop()
        changed = SshServer(tmp_path / "changed", authorized_key=public_key(identity), mount_point=mount_point,
                            port=dr_port)
        servers.append(changed)
        refusal = (rf"refused env {dr_env}'s server 127.0.0.1:{dr_port} .*presented host key SHA256:\S+, "
                   r"but ssh-ed25519 SHA256:\S+ is pinned .*so nothing was copied")
        with pytest.raises(HostKeyChanged, match=refusal):
            driver.dr_restore(production, target, backup_id)
        assert tree_files(changed.root) == {}
    finally:
        for server in servers:
            server.stop()
        driver.dr_delete(production, target)
        conn.orchestration.delete_stack(conn.orchestration.find_stack(entry["stack"], ignore_missing=True)
                                        or entry["stack"], ignore_missing=True)
        for image in dr_images_of(dr_conn, production):
            dr_conn.image.delete_image(image, ignore_missing=True)
        remove_container(dr_conn, dr_container)
        remove_container(conn, backups)
        app.close()
        dr_conn.close()
