"""POST /hooks/aodh with an X-Auth-Token (Aodh's trust+http actions), checked by the test bed's real Keystone.

The test makes its own projects and users in Keystone (and deletes them after): a production's
project whose owner holds `member`, a reader of that project, a user of another project, the
trustee that stands for Aodh, and the gateway's service user (role `service`, which Keystone's
default policy lets validate tokens). The gateway under test is the real HTTP server of an
embedded Doppel; only HTTP answers and the audit trail are looked at.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.support.gateway import Front, embedded_gateway_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.openstack
KEYSTONE = "http://127.0.0.1:5000/v3"
ALERT = {"alarm_id": "kt-a1", "alarm_name": "shop-down", "severity": "critical", "previous": "ok",
         "current": "alarm", "reason": "down", "reason_data": {"type": "threshold"}}


def login(auth: dict) -> str:
    """A token from the real Keystone for that `auth` document."""
    answer = requests.post(f"{KEYSTONE}/auth/tokens", json={"auth": auth}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.headers["X-Subject-Token"]


def password(user_id: str, secret: str, scope: dict | None = None) -> dict:
    auth = {"identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": secret}}}}
    return {**auth, "scope": scope} if scope else auth


class Realm:
    """Projects and users of one test module in the test bed's Keystone."""

    def __init__(self, conn):
        self.conn, identity, tag = conn, conn.identity, uuid.uuid4().hex[:6]
        self.secret = f"kt-{uuid.uuid4().hex}"
        self.projects, self.users = [], []
        shop, elsewhere, service = (self._project(f"kt-{name}-{tag}") for name in ("shop", "elsewhere", "service"))
        self.shop, self.elsewhere, self.service = shop, elsewhere, service
        self.owner = self._user(f"kt-owner-{tag}", shop, "member")
        self.reader = self._user(f"kt-reader-{tag}", shop, "reader")
        self.stranger = self._user(f"kt-stranger-{tag}", elsewhere, "member")
        self.aodh = self._user(f"kt-aodh-{tag}", None, None)
        self.gateway = self._user(f"kt-gateway-{tag}", service, "service")
        identity.assign_project_role_to_user(service, self.gateway, identity.find_role("member"))

    def _project(self, name):
        self.projects.append(self.conn.identity.create_project(name=name, domain_id="default"))
        return self.projects[-1]

    def _user(self, name, project, role):
        user = self.conn.identity.create_user(name=name, password=self.secret, domain_id="default")
        self.users.append(user)
        if project is not None:
            self.conn.identity.assign_project_role_to_user(project, user, self.conn.identity.find_role(role))
        return user

    def token(self, user, project) -> str:
        return login(password(user.id, self.secret, {"project": {"id": project.id}}))

    def trust_token(self) -> str:
        """What Aodh sends: a token of its trustee, scoped by a trust the alarm's owner gave it (role member)."""
        owner = self.token(self.owner, self.shop)
        answer = requests.post(f"{KEYSTONE}/OS-TRUST/trusts", headers={"X-Auth-Token": owner}, timeout=30, json={
            "trust": {"trustor_user_id": self.owner.id, "trustee_user_id": self.aodh.id, "project_id": self.shop.id,
                      "impersonation": False, "roles": [{"name": "member"}]}})
        assert answer.status_code == 201, answer.text
        return login(password(self.aodh.id, self.secret, {"OS-TRUST:trust": {"id": answer.json()["trust"]["id"]}}))

    def short_lived_token(self, seconds: float) -> str:
        """A token of the owner in the shop project that Keystone lets live only `seconds` (an application
        credential's token expires with the credential)."""
        owner = self.token(self.owner, self.shop)
        until = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")
        answer = requests.post(f"{KEYSTONE}/users/{self.owner.id}/application_credentials", timeout=30,
                               headers={"X-Auth-Token": owner}, json={"application_credential": {
                                   "name": f"kt-{uuid.uuid4().hex[:8]}", "secret": self.secret,
                                   "expires_at": until}})
        assert answer.status_code == 201, answer.text
        credential = answer.json()["application_credential"]["id"]
        return login({"identity": {"methods": ["application_credential"],
                                   "application_credential": {"id": credential, "secret": self.secret}}})

    def keystone_says(self, token: str) -> int:
        """Keystone's own answer about `token` (200 valid, 404 not), asked with the gateway user's token."""
        return requests.get(f"{KEYSTONE}/auth/tokens", timeout=30, headers={
            "X-Auth-Token": self.token(self.gateway, self.service), "X-Subject-Token": token}).status_code

    def revoke(self, token: str) -> None:
        answer = requests.delete(f"{KEYSTONE}/auth/tokens", timeout=30, headers={
            "X-Auth-Token": token, "X-Subject-Token": token})
        assert answer.status_code == 204, answer.text

    def close(self):
        for user in self.users:
            self.conn.identity.delete_user(user, ignore_missing=True)
        for project in self.projects:
            self.conn.identity.delete_project(project, ignore_missing=True)


@pytest.fixture(scope="module")
def realm(openstack_cloud):
    made = Realm(openstack_cloud)
    yield made
    made.close()


@pytest.fixture
def front(realm, tmp_path, monkeypatch):
    """A gateway that accepts tokens of the shop project carrying `member`, checked with the real Keystone."""
    embedded_gateway_env(monkeypatch, DOPPEL_TEST_KEYSTONE_PASSWORD=realm.secret)
    gateway = {"port": 0, "events": {"token_env": "DOPPEL_TEST_GATEWAY_TOKEN"},
               "aodh": {"keystone": {"auth_url": KEYSTONE, "username": realm.gateway.name,
                                     "project": realm.service.name, "password_env": "DOPPEL_TEST_KEYSTONE_PASSWORD",
                                     "allowed_projects": [realm.shop.id], "required_roles": ["member"],
                                     "cache": "60s"}}}
    running = Front(tmp_path, gateway=gateway)
    yield running
    running.close()


def post(front: Front, token: str):
    return requests.post(f"{front.url}/hooks/aodh", data=json.dumps(ALERT), timeout=30,
                         headers={"Content-Type": "application/json", "X-Auth-Token": token})


def test_a_trust_scoped_token_of_an_allowed_project_publishes_the_alert(realm, front):
    answer = post(front, realm.trust_token())

    assert answer.status_code == 202, answer.text
    alert = front.audited(answer.json()["id"])
    assert alert.type == "monitor.alert" and alert.data["alarm_id"] == "kt-a1"


def test_tokens_of_another_project_without_the_role_or_unknown_are_refused_and_publish_nothing(realm, front):
    before = front.quiesce()

    elsewhere = post(front, realm.token(realm.stranger, realm.elsewhere))
    reader = post(front, realm.token(realm.reader, realm.shop))
    forged = post(front, "gAAAAAB" + uuid.uuid4().hex * 3)

    assert [a.status_code for a in (elsewhere, reader, forged)] == [401, 401, 401]
    assert f"tokens of project {realm.elsewhere.id} are not accepted" in elsewhere.json()["error"]
    assert "lacks role(s) member" in reader.json()["error"]
    assert "does not know this X-Auth-Token" in forged.json()["error"]
    assert front.quiesce() == before


@pytest.fixture
def local_time_not_utc(monkeypatch):
    """The gateway host's local time five hours behind UTC (Keystone writes some expiry times without a zone)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_an_expired_token_is_refused_even_after_it_was_accepted(realm, local_time_not_utc, front):
    # Given a token Keystone lets live a few seconds, accepted once (and so remembered by the gateway)
    token = realm.short_lived_token(seconds=4)
    assert post(front, token).status_code == 202

    # When it expires: Keystone itself says so
    wait_for(lambda: realm.keystone_says(token) == 404, 60, "Keystone to call the token expired", interval=0.5)

    # Then the gateway refuses it, though its cache (60 s) is longer than the token's life
    before = front.quiesce()
    answer = post(front, token)
    assert answer.status_code == 401 and "does not know this X-Auth-Token" in answer.json()["error"]
    assert front.quiesce() == before


def test_an_accepted_token_is_remembered_for_the_cache_period_and_an_unseen_one_is_asked_about(realm, front):
    # Given two valid tokens, one accepted already
    seen, unseen = realm.token(realm.owner, realm.shop), realm.token(realm.owner, realm.shop)
    assert post(front, seen).status_code == 202

    # When Keystone revokes both
    realm.revoke(seen)
    realm.revoke(unseen)
    assert realm.keystone_says(seen) == realm.keystone_says(unseen) == 404

    # Then the one accepted within the cache period is still trusted (not asked about again); the other is asked
    # about, and refused
    assert post(front, seen).status_code == 202
    assert post(front, unseen).status_code == 401
