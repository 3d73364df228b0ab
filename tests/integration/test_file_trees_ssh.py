"""File trees on servers over SSH (issue 12, point 7): rsync against real sshd servers on loopback.

Production's server and the DR stack's server are two sshd processes (tests/support/sshd.py), each with
its own tree at the same path. The OpenStack driver finds them where its stacks' outputs say: the
connection is a small stand-in answering Heat's stack reads (as in tests/unit/clouds/
test_openstack_backup_source.py), so the outputs go through the driver's own reading code; the run
against the real Heat is tests/integration/openstack/test_file_trees_openstack.py.
Cost: about 2 s per test on a quiet machine (each sshd starts in ~0.1 s; each rsync is two SSH logins).
"""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from clouds.backups.restore import restore
from clouds.backups.write import write_backup
from clouds.openstack import OpenStackDriver
from clouds.openstack.file_trees import FOLDER, HostKeyChanged, doppel_identity, public_key
from clouds.stores.local import LocalStore
from core.cloud import DriverError
from schemas.openstack_files import fingerprint, parse_public_key
from tests.support.sshd import SshServer, make_host_key, sshd_available, tree_files

pytestmark = [pytest.mark.ssh, pytest.mark.skipif(not sshd_available(), reason="run tests/services/sshd.sh")]


def production(mount_point, host_key: str, **tree) -> dict:
    return {"shop": {
        "driver": "openstack", "cloud": "c", "stack": "shop-prod", "template": "/t.yaml",
        "files": [{"path": str(mount_point), "host": "{outputs.app_ip}", "port": "{outputs.ssh_port}",
                   "user": "root", "host_key": host_key, "exclude": ["cache/*"], **tree}]}}


class Stacks:
    """Heat as the driver reads it: production's stack and DR stacks (doppel-<env>), each with its outputs."""

    def __init__(self):
        self.outputs: dict[str, dict] = {}

    def add(self, name: str, **outputs):
        self.outputs[name] = outputs

    def stack(self, name: str):
        outputs = [{"output_key": k, "output_value": v} for k, v in self.outputs[name].items()]
        return SimpleNamespace(id=f"id-{name}", name=name, status="CREATE_COMPLETE", status_reason="",
                               created_at="2026-12-02T10:00:00Z", parameters={}, outputs=outputs,
                               tags=["doppel", f"doppel-env={name.removeprefix('doppel-')}"])

    def connection(self):
        template = {"heat_template_version": "2018-08-31", "resources": {}}
        return SimpleNamespace(orchestration=SimpleNamespace(
            find_stack=lambda name, ignore_missing=True: self.stack(name) if name in self.outputs else None,
            get_stack=lambda stack_id: self.stack(stack_id.removeprefix("id-")),
            get=lambda path, raise_exc=False: SimpleNamespace(status_code=200, json=lambda: template, text=""),
            resources=lambda raw: []))


@pytest.fixture
def servers(tmp_path):
    """Production's server (a tree with a cache) and a DR server made again with production's host key pair."""
    identity = doppel_identity(tmp_path / "state" / "openstack")
    mount_point = tmp_path / "srv" / "uploads"
    prod = SshServer(tmp_path / "prod", authorized_key=public_key(identity), mount_point=mount_point)
    dr = SshServer(tmp_path / "dr", authorized_key=public_key(identity), mount_point=mount_point,
                   host_key=prod.host_key)
    try:
        (prod.root / "2026" / "12").mkdir(parents=True)
        (prod.root / "2026" / "12" / "photo.jpg").write_bytes(b"\xff\xd8 a photo " * 1000)
        (prod.root / "index.html").write_text("<h1>shop</h1>")
        (prod.root / "cache").mkdir()
        (prod.root / "cache" / "page.html").write_text("rebuilt on demand")
        (dr.root / "stale.txt").write_text("from the image the DR server booted")
        yield SimpleNamespace(prod=prod, dr=dr, mount_point=mount_point)
    finally:
        prod.stop()
        dr.stop()


def driver_for(tmp_path, servers, stacks: Stacks, host_key: str | None = None, **tree) -> OpenStackDriver:
    host_key = host_key or servers.prod.public_host_key
    stacks.add("shop-prod", app_ip="127.0.0.1", ssh_port=servers.prod.port)
    return OpenStackDriver(production(servers.mount_point, host_key, **tree), connect=lambda *_: stacks.connection(),
                           state_dir=tmp_path / "state" / "openstack")


def test_production_tree_is_backed_up_with_rsync_and_restored_into_the_dr_stacks_server(tmp_path, servers, caplog):
    caplog.set_level(logging.DEBUG)
    stacks = Stacks()
    driver = driver_for(tmp_path, servers, stacks)
    store = LocalStore(tmp_path / "store")

    # Given production's tree, found at the address and port its stack's outputs give
    expected = {k: v for k, v in tree_files(servers.prod.root).items() if not k.startswith("cache/")}

    # When production is backed up, and the archive restored into the DR stack's server (its own outputs)
    manifest = write_backup(store, "shop", driver.backup_source("shop"))
    restored = tmp_path / "restored"
    restore(store, manifest.backup_id, restored, env="shop")
    stacks.add("doppel-shop-dr", app_ip="127.0.0.1", ssh_port=servers.dr.port)
    copied = driver.restore_file_trees("shop-dr", restored, production="shop")

    # Then the archive holds the tree under files/uploads/ beside the stack's description, without the excluded cache
    assert tree_files(restored / FOLDER / "uploads") == expected
    assert json.loads((restored / "openstack" / "outputs.json").read_text())["ssh_port"] == servers.prod.port
    # And the DR server's tree is production's, byte for byte, and nothing else
    assert copied == ["uploads"]
    assert tree_files(servers.dr.root) == expected
    # And no private key went into a log line
    private = doppel_identity(tmp_path / "state" / "openstack").read_text()
    assert not [r for r in caplog.records if "PRIVATE KEY" in r.getMessage() or private in r.getMessage()]


def test_later_backups_follow_changes_deletions_and_new_excludes_and_keep_the_first_backups_content(
        tmp_path, servers):
    stacks = Stacks()
    driver = driver_for(tmp_path, servers, stacks)
    store = LocalStore(tmp_path / "store")
    (servers.prod.root / "tmp").mkdir()
    (servers.prod.root / "tmp" / "upload.part").write_text("half an upload")
    first = write_backup(store, "shop", driver.backup_source("shop"))

    # When a file changes on production and another is deleted, tmp/ is newly excluded, and production is
    # backed up again (its mirror from the first backup still holds tmp/upload.part)
    (servers.prod.root / "index.html").write_text("<h1>shop, new</h1>")
    (servers.prod.root / "2026" / "12" / "photo.jpg").unlink()
    driver = driver_for(tmp_path, servers, stacks, exclude=["cache/*", "tmp/*"])
    second = write_backup(store, "shop", driver.backup_source("shop"))

    # Then the second backup has the change, and neither the deleted file nor the newly excluded one;
    # the first still restores as it was
    restore(store, first.backup_id, tmp_path / "first", env="shop")
    restore(store, second.backup_id, tmp_path / "second", env="shop")
    assert tree_files(tmp_path / "second" / FOLDER / "uploads") == {"index.html": b"<h1>shop, new</h1>"}
    assert tree_files(tmp_path / "first" / FOLDER / "uploads")["index.html"] == b"<h1>shop</h1>"
    assert "tmp/upload.part" in tree_files(tmp_path / "first" / FOLDER / "uploads")


def test_a_server_presenting_another_host_key_is_refused_with_both_fingerprints(tmp_path, servers):
    # Given a DR server re-created WITHOUT production's host key pair (a fresh key of its own)
    stacks = Stacks()
    driver = driver_for(tmp_path, servers, stacks)
    root = driver.backup_source("shop").root
    rebuilt = SshServer(tmp_path / "rebuilt", authorized_key=public_key(driver.ssh_identity()),
                        mount_point=servers.mount_point, host_key=make_host_key(tmp_path / "new-key"))
    try:
        (rebuilt.root / "kept.txt").write_text("untouched")
        stacks.add("doppel-shop-dr", app_ip="127.0.0.1", ssh_port=rebuilt.port)

        # When the backup is restored into it
        with pytest.raises(HostKeyChanged) as refused:
            driver.restore_file_trees("shop-dr", root, production="shop")
    finally:
        rebuilt.stop()

    # Then it is refused, naming the server and both fingerprints, and nothing was copied
    message = str(refused.value)
    pinned = fingerprint(parse_public_key(servers.prod.public_host_key)[1])
    presented = fingerprint(parse_public_key(rebuilt.public_host_key)[1])
    assert f"env shop-dr's server 127.0.0.1:{rebuilt.port}" in message
    assert f"presented host key {presented}" in message and f"{pinned} is pinned" in message
    assert "docs/openstack.md" in message and refused.value.permanent
    assert tree_files(rebuilt.root) == {"kept.txt": b"untouched"}


def test_production_whose_host_key_changed_is_not_backed_up(tmp_path, servers):
    # Given a pinned key that is not the one production's server presents
    other = parse_public_key(open(f"{make_host_key(tmp_path / 'other')}.pub").read())
    import base64
    driver = driver_for(tmp_path, servers, Stacks(), host_key=f"{other[0]} {base64.b64encode(other[1]).decode()}")

    # When production is backed up, then the backup fails for good, saying the key changed
    with pytest.raises(HostKeyChanged, match=r"refused production shop's server .* presented host key SHA256:"):
        driver.backup_source("shop")
    assert not (tmp_path / "state" / "openstack" / "backup-sources" / "shop" / FOLDER / "uploads").exists()


def test_a_server_that_does_not_know_doppels_key_is_refused_saying_which_key_to_add(tmp_path, servers):
    stacks = Stacks()
    driver = driver_for(tmp_path, servers, stacks, user="nobody")
    with pytest.raises(DriverError) as refused:
        driver.backup_source("shop")
    assert f"production shop's server 127.0.0.1:{servers.prod.port}" in str(refused.value)
    assert public_key(driver.ssh_identity()) in str(refused.value) and "PRIVATE" not in str(refused.value)
    assert "~nobody/.ssh/authorized_keys" in str(refused.value) and refused.value.permanent


def test_a_missing_output_fails_naming_the_outputs_there_are(tmp_path, servers):
    stacks = Stacks()
    driver = driver_for(tmp_path, servers, stacks)
    stacks.add("shop-prod", app_ip="127.0.0.1")  # no ssh_port
    with pytest.raises(DriverError,
                       match=r"server of files uploads of production shop: .* outputs.ssh_port, .*\(it has: app_ip\)"):
        driver.backup_source("shop")
