"""What `notify` says in chat, through the `notify:` section's webhooks (a loopback server standing in for a
Slack or Mattermost incoming webhook), on the embedded bus."""
import pytest

from core.cloud import DnsRecord
from tests.flow.conftest import Shop
from tests.flow.test_dr import HOME, NAME, alert, back_up, dr_policy
from tests.support.gateway import ReplyCatcher


@pytest.fixture
def chatty(tmp_path, monkeypatch):
    """A sample production with a DR policy, and two chat webhooks (one of them down)."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    webhook = ReplyCatcher()
    monkeypatch.setenv("DOPPEL_TEST_CHAT_WEBHOOK", webhook.url)
    monkeypatch.setenv("DOPPEL_TEST_DEAD_WEBHOOK", "http://127.0.0.1:9/nobody-listens")
    shop = Shop(tmp_path, dr=dr_policy(), notify={"webhooks": [{"url_env": "DOPPEL_TEST_DEAD_WEBHOOK"},
                                                               {"url_env": "DOPPEL_TEST_CHAT_WEBHOOK"}]})
    shop.app.cloud.switch_dns(DnsRecord(NAME, "A", HOME, 300))
    yield shop, webhook
    shop.app.close()
    webhook.close()


def test_a_failover_and_an_environment_are_told_in_chat_and_a_dead_webhook_fails_nothing(chatty):
    shop, webhook = chatty
    backup = back_up(shop)

    alert(shop)
    shop.publish("env.requested", env="perf-test", production="shop")

    # (each handler posts before it acks, and the bus ran until idle: every post has arrived)
    texts = [m["text"] for m in webhook.received]
    assert len(texts) == 2
    assert texts[0].startswith(f"Production shop failed over to DR from backup {backup}: RPO ")
    assert texts[1].startswith("Environment perf-test is ready")
    assert len(shop.events("failover.done")) == 1
    # notify handled failover.done, snapshot.done, stack.ready and env.ready; the dead webhook parked nothing
    assert shop.worker.stats.counts["parked:notify"] == 0 and shop.worker.stats.counts["handled:notify"] == 4
