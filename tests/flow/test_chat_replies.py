"""What a person hears back from chat: a clone's steps and outcome on the command's response URL (in
test_gateway.py), and the warning before an environment's end, in the channel, once however often the
scheduler ticks."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from clouds.local.sample import make_sample_production
from core.registry import READY
from scheduler.firing import Emitter, Firer
from tests.support.gateway import SECRETS, Front, ReplyCatcher, embedded_gateway_env

TICKS = 5


@pytest.fixture
def front_with_channel(tmp_path, monkeypatch):
    channel = ReplyCatcher()  # stands in for the channel's incoming webhook
    embedded_gateway_env(monkeypatch, DOPPEL_TEST_CHANNEL_WEBHOOK=channel.url)
    shop = make_sample_production(tmp_path / "production" / "shop")
    front = Front(tmp_path, productions={"shop": shop}, environments={"warn_before": "24h"},
                  notify={"webhooks": [{"url_env": "DOPPEL_TEST_CHANNEL_WEBHOOK"}]})
    yield front, channel
    front.close()
    channel.close()


def create(front: Front, text: str) -> dict:
    body = urlencode({"team_id": "T1", "channel_id": "C1", "user_id": "U1", "user_name": "alice",
                      "command": "/doppel", "text": text}).encode()
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRETS["DOPPEL_TEST_SLACK_SIGNING"]).generate_signature(
        timestamp=stamp, body=body.decode())
    return front.call("POST", "/chat/slack", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                    "X-Slack-Request-Timestamp": stamp,
                                                    "X-Slack-Signature": signature}).json


def firer(front: Front) -> Firer:
    """A scheduler replica's firer over the same registry and bus, holding the lease."""
    return Firer(control=None, registry=front.app.registry, emitter=Emitter(front.app.broker, front.app.engine),
                 may_fire=lambda: True)


def test_an_environment_near_its_end_is_warned_once_not_once_per_tick(front_with_channel):
    front, channel = front_with_channel
    create(front, "env create perf-test --from shop --ttl 8h")
    channel.wait_for(1)  # "ready" reaches the channel too
    front.quiesce()
    assert front.app.registry.living("perf-test").state == READY
    before = len(channel.received)

    # When the scheduler ticks several times, and another replica (or a restart) ticks too
    one, other = firer(front), firer(front)
    sent = [one.sweep_expiring(86400) for _ in range(TICKS)] + [other.sweep_expiring(86400)]
    front.quiesce()

    # Then the channel got one warning, with how to extend it
    warnings = [m["text"] for m in channel.received[before:]]
    assert sent == [1, 0, 0, 0, 0, 1]  # each replica sends it once; the bus de-duplicates the second
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("Environment perf-test (alice's) ends at ")
    assert "/doppel env extend perf-test 8h" in warnings[0]

    # Extended from chat out of the window, it is not warned; near its new end, it is warned again
    extended = create(front, "env extend perf-test 2d")
    assert extended["text"].startswith("perf-test now ends at")
    assert one.sweep_expiring(86400) == 0
    assert one.sweep_expiring(4 * 86400) == 1
    history = front.app.registry.transitions(front.app.registry.living("perf-test"))
    assert history[-1].reason == "extended by alice by 2d"
