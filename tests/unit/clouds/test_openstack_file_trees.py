"""`files:` of an OpenStack production: what loads, what is refused, and the host key pair handed to templates.

The copies themselves (rsync over SSH against real sshd servers) are tests/integration/test_file_trees_ssh.py.
"""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clouds.openstack.backups import _generated_parameters, _parameters
from clouds.openstack.file_trees import host_key_values
from clouds.openstack.template import render_parameters
from core.cloud import DriverError
from schemas.production import ProductionConfigError, load_productions


def key_pair() -> tuple[str, str]:
    """(private OpenSSH text, public line) of a fresh ed25519 key."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


PRIVATE, PUBLIC = key_pair()


def load(files: list, **entry) -> dict:
    base = {"driver": "openstack", "cloud": "c", "stack": "shop-prod", "template": "/t.yaml", "files": files}
    return load_productions({"shop": {**base, **entry}})["shop"]


def tree(**fields) -> dict:
    return {"path": "/var/www/uploads/", "host": "{outputs.app_ip}", "user": "doppel", "host_key": PUBLIC + " me@x",
            **fields}


def test_a_tree_loads_named_after_its_directory_on_port_22_with_the_keys_comment_dropped():
    loaded = load([tree()])["files"][0]
    assert (loaded["name"], loaded["path"], loaded["port"]) == ("uploads", "/var/www/uploads", 22)
    assert loaded["host_key"] == PUBLIC and loaded["exclude"] == []


@pytest.mark.parametrize("fields, complaint", [
    ({"host_key": "ssh-ed25519 bm90IGEga2V5"}, "host_key: the key data after ssh-ed25519 is not an OpenSSH public key"),
    ({"host_key": "ssh-dss AAAA"}, "host_key: must be a public host key line"),
    ({"host_key": PUBLIC.replace("ssh-ed25519", "ssh-rsa")},
     "host_key: the key data is a ssh-ed25519 key, not ssh-rsa"),
    ({"path": "uploads"}, "path: 'uploads' must be an absolute directory"),
    ({"path": "/"}, "path: '/' must be an absolute directory on the server other than /"),
    ({"host": "{secrets.ip}"}, "host: may be a value or one {outputs.NAME}"),
    ({"port": "{outputs.port} "}, None),
    ({"port": "2{outputs.port}"}, "port: may be a value or one {outputs.NAME}"),
    ({"port": 70000}, "port: Must be greater than or equal to 1 and less than or equal to 65535"),
    ({"user": "root; rm"}, "user: must be a login name"),
    ({"password": "x"}, "password: unknown key"),
])
def test_what_a_tree_may_say(fields, complaint):
    if complaint is None:
        assert load([tree(**fields)])["files"][0]["port"] == "{outputs.port}"
        return
    with pytest.raises(ProductionConfigError) as refused:
        load([tree(**fields)])
    assert complaint in str(refused.value)


def test_two_trees_of_one_name_and_a_host_key_placeholder_without_its_private_key_are_refused():
    with pytest.raises(ProductionConfigError) as refused:
        load([tree(), tree(path="/srv/uploads")], parameters={"app_host_key": "{host_key.uploads}"})
    text = str(refused.value)
    assert "files[1].name: 'uploads' is taken by files entry 0" in text
    assert ("parameters.app_host_key: uses {host_key.uploads}, but no files entry named 'uploads' has "
            "host_key_env") in text


def test_the_template_gets_the_pinned_pair_from_the_variable_and_backups_never_hold_the_private_half():
    spec = load([tree(host_key_env="SHOP_UPLOADS_HOST_KEY")],
                parameters={"host_key": "{host_key.uploads}", "host_key_pub": "{host_key.uploads.public}"})
    values = host_key_values(spec, "shop", environ={"SHOP_UPLOADS_HOST_KEY": PRIVATE})
    rendered = render_parameters(spec["parameters"], images={}, volume_snapshots={}, secrets={}, config_url="u",
                                 env="dr", production="shop", host_keys=values)
    assert rendered == {"host_key": PRIVATE.strip() + "\n", "host_key_pub": PUBLIC}
    # A backup of the stack writes the private half only as its placeholder, as it does generated credentials
    written = _parameters(rendered, _generated_parameters(spec))
    assert written["generated"] == {"host_key": "{host_key.uploads}"} and "host_key" not in written["parameters"]
    assert written["parameters"]["host_key_pub"] == PUBLIC


def test_a_private_key_that_is_not_the_pinned_keys_pair_or_is_missing_stops_the_stack_and_is_not_shown():
    spec = load([tree(host_key_env="SHOP_UPLOADS_HOST_KEY")], parameters={"host_key": "{host_key.uploads}"})
    other, _ = key_pair()
    with pytest.raises(DriverError, match=r"not the pair of the pinned host_key \(SHA256:") as refused:
        host_key_values(spec, "shop", environ={"SHOP_UPLOADS_HOST_KEY": other})
    assert "PRIVATE KEY" not in str(refused.value) and refused.value.permanent
    with pytest.raises(DriverError, match="SHOP_UPLOADS_HOST_KEY is empty or not set"):
        host_key_values(spec, "shop", environ={})
    # A template that does not use the pair needs no variable
    assert host_key_values({**spec, "parameters": {}}, "shop", environ={}) == {}


def test_a_private_key_in_a_parameter_heat_shows_is_masked_in_the_backup_whatever_its_name():
    # A production's stack whose template forgot `hidden: true` on the host key parameter
    written = _parameters({"boot_identity": PRIVATE, "flavor": "m1.small"}, {})
    assert written["parameters"] == {"boot_identity": "[redacted]", "flavor": "m1.small"}
    assert written["masked"] == ["boot_identity"]


def test_an_environments_stack_is_created_with_the_pinned_pair_in_its_parameters(tmp_path, monkeypatch):
    # Given a production whose template hands its servers the host key pair
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from clouds.openstack import OpenStackDriver
    from core.cloud import ComponentSnapshot, Snapshot
    template = tmp_path / "env.yaml"
    template.write_text("heat_template_version: 2018-08-31\nresources: {}\n")
    created = []
    conn = SimpleNamespace(
        orchestration=SimpleNamespace(find_stack=lambda name, ignore_missing=True: None,
                                      create_stack=lambda **kwargs: created.append(kwargs)),
        object_store=SimpleNamespace(get_endpoint=lambda: "http://swift/v1/AUTH_x"))
    entry = {"driver": "openstack", "cloud": "c", "stack": "shop-prod", "template": str(template),
             "parameters": {"image": "{snapshot.image.app}", "host_key": "{host_key.uploads}",
                            "host_key_public": "{host_key.uploads.public}"},
             "files": [tree(host_key_env="SHOP_UPLOADS_HOST_KEY")]}
    snapshot = Snapshot(id="snap-1", production="shop", env="dr", created=datetime.now(UTC),
                        components=(ComponentSnapshot("image", "app", "img-1"),))

    class Driver(OpenStackDriver):
        def snapshot_status(self, snapshot_id):
            return snapshot
    driver = Driver({"shop": entry}, connect=lambda *_: conn, state_dir=tmp_path)
    monkeypatch.setenv("SHOP_UPLOADS_HOST_KEY", PRIVATE)

    # When an environment (a DR copy) is made from it
    driver.create_stack("dr", snapshot, {}, "req-1")

    # Then Heat is handed the pinned pair, which the template puts in the server's user data
    parameters = created[0]["parameters"]
    assert (parameters["image"], parameters["host_key"], parameters["host_key_public"]) == (
        "img-1", PRIVATE.strip() + "\n", PUBLIC)
