"""POST /hooks/aodh with X-Auth-Token against the real Keystone of the OpenStack test bed
(tests/services/openstack.sh): the gateway logs in with keystoneauth1 and asks Keystone about each token."""
from __future__ import annotations

import json

import pytest

from tests.support.gateway import Front, embedded_gateway_env

pytestmark = pytest.mark.openstack
ALERT = {"alarm_id": "a-keystone", "current": "alarm", "previous": "ok", "reason": "down"}


@pytest.fixture
def cloud(openstack_cloud):
    """The session's connection to the OpenStack test bed (tests/integration/conftest.py)."""
    return openstack_cloud


@pytest.fixture
def keystone_front(cloud, tmp_path, monkeypatch):
    auth = cloud.config.config["auth"]
    embedded_gateway_env(monkeypatch, DOPPEL_TEST_KEYSTONE_PASSWORD=auth["password"])
    gateway = {"port": 0, "events": {"token_env": "DOPPEL_TEST_GATEWAY_TOKEN"},
               "aodh": {"keystone": {"auth_url": auth["auth_url"], "username": auth["username"],
                                     "password_env": "DOPPEL_TEST_KEYSTONE_PASSWORD",
                                     "project": auth["project_name"], "required_roles": ["admin"],
                                     "allowed_projects": [cloud.current_project_id]}}}
    front = Front(tmp_path, gateway=gateway)
    yield front
    front.close()


def post(front: Front, token: str):
    return front.call("POST", "/hooks/aodh", json.dumps(ALERT).encode(),
                      {"Content-Type": "application/json", "X-Auth-Token": token})


def test_a_token_keystone_issued_is_accepted_and_a_made_up_one_is_refused(cloud, keystone_front):
    token = cloud.session.get_token()  # a real token of the test bed's admin, in its project

    accepted = post(keystone_front, token)
    forged = post(keystone_front, "gAAAAAB-not-a-token-keystone-issued")

    assert accepted.status == 202, accepted.body
    assert keystone_front.audited(accepted.json["id"]).type == "monitor.alert"
    assert forged.status == 401 and "Keystone does not know" in forged.json["error"]
