"""Chat-ops roles and approvals: a requester keeps to their own environments, a failover from chat waits for a
second operator (within the time limit), and the audit trail names both. Slack requests are signed with
slack_sdk; the approval comes over Mattermost, with the same words."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from clouds.local.sample import make_sample_production
from tests.support.gateway import GATEWAY, SECRETS, Front, embedded_gateway_env

ROLES = {"operator": {"users": ["U-CAROL"], "groups": ["T-OPS"]}, "viewer": {"users": ["U-VIC"]},
         "granted_by": "#doppel-admins"}


@pytest.fixture
def front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    shop = make_sample_production(tmp_path / "production" / "shop")
    running = Front(tmp_path, gateway={**GATEWAY, "roles": ROLES}, productions={"shop": shop})
    yield running
    running.close()


def slack(front: Front, text: str, user_id: str, user_name: str):
    body = urlencode({"team_id": "T1", "channel_id": "C1", "user_id": user_id, "user_name": user_name,
                      "command": "/doppel", "text": text, "response_url": "http://127.0.0.1:9/r"}).encode()
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRETS["DOPPEL_TEST_SLACK_SIGNING"]).generate_signature(
        timestamp=stamp, body=body.decode())
    answer = front.call("POST", "/chat/slack", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                      "X-Slack-Request-Timestamp": stamp,
                                                      "X-Slack-Signature": signature})
    assert answer.status == 200, answer.body
    return answer.json


def mattermost(front: Front, text: str, user_id: str, user_name: str, team_id: str = "T-DEV"):
    body = urlencode({"token": SECRETS["DOPPEL_TEST_MATTERMOST_TOKEN"], "team_id": team_id, "channel_id": "C9",
                      "user_id": user_id, "user_name": user_name, "text": text}).encode()
    answer = front.call("POST", "/chat/mattermost", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 200, answer.body
    return answer.json


def audited(front: Front, event_type: str) -> list:
    front.quiesce()
    return front.app.audit.events(event_type=event_type)


def test_a_requester_keeps_to_their_own_environments_and_cannot_fail_over(front: Front):
    front.app.registry.request(name="bobs-copy", request_id="test/1", production="shop", owner="bob")
    front.app.registry.request(name="alices-copy", request_id="test/2", production="shop", owner="alice")
    before = front.quiesce()

    others = slack(front, "env delete bobs-copy", "U-ALICE", "alice")
    longer = slack(front, "env extend bobs-copy 4h", "U-ALICE", "alice")
    failover = slack(front, "dr failover shop", "U-ALICE", "alice")
    viewer = mattermost(front, "env create vics-copy --from shop", "U-VIC", "vic")

    assert others["text"].startswith("Not allowed: `env delete` of bobs-copy, which bob owns, needs the operator "
                                     "role; you are a requester. Ask #doppel-admins to add your user id (U-ALICE)")
    assert "needs the operator role" in longer["text"]
    assert "`dr failover` needs the operator role" in failover["text"] and "#doppel-admins" in failover["text"]
    assert "`env create` needs the requester role; you are a viewer" in viewer["text"]
    assert front.quiesce() == before  # nothing was published
    assert front.app.registry.living("bobs-copy").expires_at is None

    # Her own she may delete; an operator (by Mattermost team) may delete anyone's
    own = slack(front, "env delete alices-copy", "U-ALICE", "alice")
    operator = mattermost(front, "env delete bobs-copy", "U-DAVE", "dave", team_id="T-OPS")
    assert own["text"].startswith("Backing up, then deleting alices-copy")
    assert operator["text"].startswith("Backing up, then deleting bobs-copy")
    assert sorted(e.data["env"] for e in audited(front, "env.expired")) == ["alices-copy", "bobs-copy"]


def test_a_failover_from_chat_runs_only_once_a_second_operator_approves_and_the_audit_names_both(front: Front):
    asked = slack(front, "dr failover shop", "U-CAROL", "carol")

    assert asked["response_type"] == "in_channel"
    code = asked["text"].split("/doppel approve ")[1].split("`")[0]
    assert audited(front, "failover.confirmed") == []
    assert [e.data["text"] for e in audited(front, "notify.sent") if e.source != "test/marker"] == [asked["text"]]

    # The asker cannot approve, nor can a requester
    herself = slack(front, f"approve {code}", "U-CAROL", "carol")
    requester = mattermost(front, f"approve {code}", "U-ALICE", "alice")
    assert "a second operator must approve it" in herself["text"]
    assert "`approve` needs the operator role" in requester["text"]
    assert audited(front, "failover.confirmed") == []

    # A second operator, on Mattermost with the same words, approves: the failover is confirmed once
    approved = mattermost(front, f"approve {code.lower()}", "U-DAVE", "dave", team_id="T-OPS")
    again = mattermost(front, f"approve {code}", "U-DAVE", "dave", team_id="T-OPS")

    assert approved["text"].startswith("Approved: fail over shop (asked by carol, approved by dave)")
    assert "already approved by dave" in again["text"]
    [confirmed] = audited(front, "failover.confirmed")
    assert confirmed.data == {"production": "shop", "requested_by": "carol", "approved_by": "dave"}
    assert confirmed.source == "doppel/gateway/mattermost"


def test_a_slack_approve_button_click_approves_as_the_command_does(front: Front):
    asked = slack(front, "dr failback shop", "U-CAROL", "carol")
    [button] = asked["blocks"][1]["elements"]
    payload = {"type": "block_actions", "user": {"id": "U-ERIN", "username": "erin"}, "team": {"id": "T-OPS"},
               "channel": {"id": "C1"}, "actions": [{"action_id": button["action_id"], "value": button["value"]}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRETS["DOPPEL_TEST_SLACK_SIGNING"]).generate_signature(
        timestamp=stamp, body=body.decode())
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp}

    forged = front.call("POST", "/chat/slack/interactions", body, {**headers, "X-Slack-Signature": "v0=00"})
    clicked = front.call("POST", "/chat/slack/interactions", body, {**headers, "X-Slack-Signature": signature})

    assert forged.status == 401
    assert clicked.status == 200, clicked.body
    assert clicked.json["text"].startswith("Approved: fail back shop (asked by carol, approved by erin)")
    [requested] = audited(front, "failback.requested")
    assert requested.data == {"production": "shop", "requested_by": "carol", "approved_by": "erin"}


def test_an_approval_after_the_time_limit_is_refused_and_publishes_nothing(front: Front):
    asked = slack(front, "dr failback shop", "U-CAROL", "carol")
    code = asked["text"].split("/doppel approve ")[1].split("`")[0]
    approvals = front.server.gateway.chat.dr.approvals
    later = datetime.now(timezone.utc) + timedelta(seconds=approvals.timeout_s + 1)
    approvals.clock = lambda: later  # the time limit has passed
    before = front.quiesce()

    late = mattermost(front, f"approve {code}", "U-DAVE", "dave", team_id="T-OPS")

    assert late["text"].startswith(f"Not approved: {code} expired at")
    assert "ask again with `/doppel dr failback shop`" in late["text"]
    assert front.quiesce() == before
    assert audited(front, "failback.requested") == []
