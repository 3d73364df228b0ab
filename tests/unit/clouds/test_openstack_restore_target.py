"""Failover, failback and drills ask the driver for a restore target with the production, and failback for
production's place and a restore in place; on OpenStack those verbs are not built yet, and the answer must say
so (a permanent DriverError), not fail on its arguments."""
from __future__ import annotations

import pytest

from clouds.factory import ProductionDriver
from clouds.local import LocalDriver
from clouds.openstack import OpenStackDriver
from core.cloud import DriverError

PRODUCTIONS = {"shop": {"driver": "openstack", "cloud": "c", "stack": "shop", "template": "/t.yaml"}}


def test_restore_target_called_as_the_dr_functions_call_it_says_it_is_not_built_yet():
    driver = OpenStackDriver(PRODUCTIONS, connect=lambda *_: None)

    with pytest.raises(DriverError, match="not supported by the openstack driver yet") as raised:
        driver.restore_target("shop-dr", production="shop")

    assert raised.value.permanent and raised.value.env == "shop-dr"
    assert "OpenStack end to end" in str(raised.value) and "production shop" in str(raised.value)


def test_a_mixed_estate_sends_an_openstack_productions_restore_to_the_openstack_driver(tmp_path):
    openstack = OpenStackDriver(PRODUCTIONS, connect=lambda *_: None)
    driver = ProductionDriver(LocalDriver(tmp_path / "state", {}), {"openstack": openstack}, {"shop": "openstack"})

    with pytest.raises(DriverError, match="not supported by the openstack driver yet"):
        driver.restore_target("shop-dr", production="shop")

    assert driver.restore_target("scratch") == tmp_path / "state" / "envs" / "scratch" / "root"


def test_a_failback_into_an_openstack_production_says_it_is_not_built_yet(tmp_path):
    openstack = OpenStackDriver(PRODUCTIONS, connect=lambda *_: None)
    local = {"home": {"driver": "local", "path": str(tmp_path / "home"), "base_url": "http://home.test",
                      "components": [{"kind": "files", "path": "app"}]}}
    driver = ProductionDriver(LocalDriver(tmp_path / "state", local), {"openstack": openstack},
                              {"shop": "openstack", "home": "local"})

    with pytest.raises(DriverError, match="not supported by the openstack driver yet") as root:
        driver.production_root("shop")
    with pytest.raises(DriverError, match="not supported by the openstack driver yet") as in_place:
        driver.restore_in_place("shop", lambda into: None, keep_old=True, label="failback-b1")

    assert root.value.permanent and "restore-by-hand" in str(root.value)
    assert in_place.value.permanent and in_place.value.env == "shop"
    assert driver.production_root("home") == (tmp_path / "home").resolve()
