"""POST /chat/slack and /chat/mattermost: requests signed by Slack's own SDK code, and Mattermost's token."""
import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from clouds.local.sample import make_sample_production
from tests.support.gateway import GATEWAY, SECRETS, Front, embedded_gateway_env

SIGNING = SECRETS["DOPPEL_TEST_SLACK_SIGNING"]


def slash_form(text: str, response_url="https://hooks.slack.com/commands/T1/1/abc", **extra) -> bytes:
    return urlencode({"token": "legacy-verification", "team_id": "T1", "channel_id": "C1", "user_id": "U1",
                      "user_name": "alice", "command": "/doppel", "text": text, "response_url": response_url,
                      "trigger_id": "1.2.3", **extra}).encode()


def slack_headers(body: bytes, *, secret=SIGNING, timestamp=None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body.decode())
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature}


def test_a_signed_help_command_gets_the_usage_ephemerally(front: Front):
    body = slash_form("help")
    answer = front.call("POST", "/chat/slack", body, slack_headers(body))

    assert answer.status == 200
    assert answer.json["response_type"] == "ephemeral"
    assert "/doppel env create NAME --from PRODUCTION" in answer.json["text"]


def test_forged_stale_and_unsigned_slack_requests_are_refused_and_publish_nothing(front: Front):
    front.app.config["productions"]["shop"] = {}  # the create below would publish if it got through
    before = front.quiesce()
    body = slash_form("env create perf-test --from shop")

    forged = front.call("POST", "/chat/slack", body, slack_headers(body, secret="not-the-signing-secret"))
    stale = front.call("POST", "/chat/slack", body, slack_headers(body, timestamp=int(time.time()) - 301))
    future = front.call("POST", "/chat/slack", body, slack_headers(body, timestamp=int(time.time()) + 600))
    unsigned = front.call("POST", "/chat/slack", body, {"Content-Type": "application/x-www-form-urlencoded"})
    tampered = front.call("POST", "/chat/slack", body.replace(b"perf-test", b"perf-tesx"), slack_headers(body))

    assert [a.status for a in (forged, stale, future, unsigned, tampered)] == [401] * 5
    assert "older" in stale.json["error"] or "signed" in stale.json["error"]
    assert front.quiesce() == before
    assert front.gateway_metric("doppel_gateway_requests_rejected_total", "stale_timestamp") == 2


def test_unknown_commands_and_bad_arguments_get_a_helpful_answer(front: Front):
    answers = {}
    for text in ("deploy everything", "env frobnicate x", "env create perf-test", "env create 'unclosed",
                 "env create perf-test --from shop --ttl soon", "env create Perf_Test --from nowhere"):
        body = slash_form(text)
        answer = front.call("POST", "/chat/slack", body, slack_headers(body))
        assert answer.status == 200
        answers[text] = answer.json["text"]

    assert answers["deploy everything"].startswith("Unknown command 'deploy everything'")
    assert "Doppel slash commands" in answers["env frobnicate x"]
    assert "needs a NAME and --from PRODUCTION" in answers["env create perf-test"]
    assert "quotes" in answers["env create 'unclosed"]
    assert "not a duration" in answers["env create perf-test --from shop --ttl soon"]
    assert "no production 'nowhere'" in answers["env create Perf_Test --from nowhere"]


def test_env_list_and_show_answer_from_the_registry(front: Front):
    env, _ = front.app.registry.request(name="perf-test", request_id="test/1", production="shop", owner="bob")

    body = slash_form("env list")
    listed = front.call("POST", "/chat/slack", body, slack_headers(body)).json["text"]
    body = slash_form("env show perf-test")
    shown = front.call("POST", "/chat/slack", body, slack_headers(body)).json["text"]
    body = slash_form("env show ghost")
    ghost = front.call("POST", "/chat/slack", body, slack_headers(body)).json["text"]

    assert "perf-test  requested  from shop  owner bob" in listed
    assert shown.startswith("perf-test: requested, from shop, owner bob")
    assert "No environment ghost" in ghost


def test_mattermost_needs_the_commands_token(front: Front):
    before = front.quiesce()
    good = slash_form("help", token=SECRETS["DOPPEL_TEST_MATTERMOST_TOKEN"])
    bad = slash_form("env delete perf-test", token="mattermost-token-00000")
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    accepted = front.call("POST", "/chat/mattermost", good, form)
    in_header = front.call("POST", "/chat/mattermost", slash_form("help", token=""),
                           {**form, "Authorization": f"Token {SECRETS['DOPPEL_TEST_MATTERMOST_TOKEN']}"})
    refused = front.call("POST", "/chat/mattermost", bad, form)

    assert accepted.status == in_header.status == 200 and "Doppel slash commands" in accepted.json["text"]
    assert refused.status == 401 and SECRETS["DOPPEL_TEST_MATTERMOST_TOKEN"] not in refused.body.decode()
    assert front.quiesce() == before


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    """A gateway whose slash commands only U1 and U2 may use, only in C1 (Slack) and only U9 (Mattermost)."""
    embedded_gateway_env(monkeypatch)
    gateway = {**GATEWAY,
               "slack": {**GATEWAY["slack"], "allowed_users": ["U1", "U2"], "allowed_channels": ["C1"]},
               "mattermost": {**GATEWAY["mattermost"], "allowed_users": ["U9"]}}
    running = Front(tmp_path, gateway=gateway,
                    productions={"shop": make_sample_production(tmp_path / "production" / "shop")})
    yield running
    running.close()


def test_slash_commands_from_outside_the_allow_lists_are_answered_and_publish_nothing(guarded: Front):
    before = guarded.quiesce()
    answers = {}
    for who, extra in {"stranger": {"user_id": "U7"}, "wrong channel": {"channel_id": "C2"},
                       "no user id": {"user_id": ""}}.items():
        body = slash_form("env create perf-test --from shop", **extra)
        answer = guarded.call("POST", "/chat/slack", body, slack_headers(body))
        assert answer.status == 200 and answer.json["response_type"] == "ephemeral"
        answers[who] = answer.json["text"]
    body = slash_form("env delete perf-test", token=SECRETS["DOPPEL_TEST_MATTERMOST_TOKEN"])  # user U1
    mattermost = guarded.call("POST", "/chat/mattermost", body,
                              {"Content-Type": "application/x-www-form-urlencoded"}).json["text"]

    assert "(U7) to gateway.slack.allowed_users" in answers["stranger"]
    assert "(C2) to gateway.slack.allowed_channels" in answers["wrong channel"]
    assert "(not sent) to gateway.slack.allowed_users" in answers["no user id"]
    assert "(U1) to gateway.mattermost.allowed_users" in mattermost
    assert guarded.quiesce() == before
    assert guarded.gateway_metric("doppel_gateway_requests_rejected_total", "chat_not_allowed") == 4


def test_an_allowed_user_in_an_allowed_channel_is_served(guarded: Front):
    body = slash_form("env create perf-test --from shop", user_id="U2")
    answer = guarded.call("POST", "/chat/slack", body, slack_headers(body)).json["text"]

    assert answer.startswith("Creating perf-test from shop")
    assert guarded.gateway_metric("doppel_gateway_requests_rejected_total", "chat_not_allowed") == 0
