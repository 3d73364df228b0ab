"""What the snapshot step takes from a request, on the embedded bus and the sample production: the data version
(an environment made from a backup holds that backup's data, not production's as it is now), the TTL (the
production's own default and limit before the section's), the request's chain, and, for a request refused or
failed before it was registered, a reply that names the production and the request it answers. Each test names
the breaks it catches."""
import pytest
from sqlalchemy.exc import OperationalError

from core.registry import FAILED, READY
from tests.flow.conftest import Shop
from tests.flow.test_dr import add_order, has_order
from tests.support.gateway import ReplyCatcher


@pytest.fixture
def limited_shop(tmp_path, monkeypatch):
    """The sample production, whose own TTL limits (4 h by default, 6 h at most) are below the section's."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    shop = Shop(tmp_path, environments={"default_ttl": "1d", "max_ttl": "2d",
                                        "productions": {"shop": {"default_ttl": "4h", "max_ttl": "6h"}}})
    yield shop
    shop.app.close()


@pytest.fixture
def catcher():
    made = ReplyCatcher()
    yield made
    made.close()


def test_an_environment_asked_from_a_backup_holds_that_backups_data_and_the_request_it_came_from(shop):
    # Breaks caught: the data version dropped on the way to the registry (the environment made from production
    # as it is now); the request's chain (correlation) not recorded, which the sweep's env.failed is sent in
    shop.publish("backup.due", env="shop")
    (backup,) = [e.id for e in shop.app.backups.list("shop")]
    add_order(shop.production / "data/shop.db", 7777)  # written after the backup

    asked = shop.publish("env.requested", env="as-backed-up", production="shop", data_version=backup)
    shop.publish("env.requested", env="as-now", production="shop")

    env = shop.app.registry.living("as-backed-up")
    assert (env.state, env.data_version, env.correlation_id) == (READY, backup, asked.id)
    assert not has_order(shop.app.cloud.restore_target("as-backed-up") / "data/shop.db", 7777)
    assert has_order(shop.app.cloud.restore_target("as-now") / "data/shop.db", 7777)


def test_the_productions_own_ttl_limits_come_before_the_sections(limited_shop):
    # Breaks caught: the section's limits read instead of the production's; no default TTL given to a request
    # that asks for none
    shop = limited_shop
    shop.publish("env.requested", env="default-ttl", production="shop")
    shop.publish("env.requested", env="too-long", production="shop", ttl_seconds=7 * 3600)

    assert shop.app.registry.living("default-ttl").ttl_seconds == 4 * 3600
    (failed,) = shop.events("env.failed")
    assert failed.data["env"] == "too-long" and "a TTL of 7h is longer than this Doppel allows (6h" in \
        failed.data["reason"]


def test_a_request_failed_before_it_was_registered_is_registered_with_what_it_asked(shop):
    # Breaks caught: the failed request registered without its data version, TTL or chain (`doppel env show`
    # would not say what was asked, and a replay after the fix would make something else)
    asked = shop.publish("env.requested", env="perf-test", production="nosuch", data_version="20261201T000000Z-abc123",
                         ttl_seconds=5400)

    env = shop.app.registry.latest("perf-test")
    assert env.state == FAILED and "not described in doppel.yaml" in env.reason
    assert (env.data_version, env.ttl_seconds, env.correlation_id) == ("20261201T000000Z-abc123", 5400, asked.id)


def test_a_request_for_a_taken_name_is_refused_naming_its_production_the_request_and_what_to_do(shop):
    # Breaks caught: the refusal's env.failed without its production or the request it answers (its cause);
    # the advice at the end of the reason lost
    shop.publish("env.requested", env="perf-test", production="shop")
    second = shop.publish("env.requested", env="perf-test", production="shop")

    (failed,) = shop.events("env.failed")
    assert (failed.data["production"], failed.data["step"], failed.data["cause_id"]) == ("shop", "snapshot",
                                                                                         second.id)
    assert failed.data["reason"].endswith("which is left as it is; ask again under another name, or delete that "
                                          "one first")


def test_a_request_from_an_unknown_production_for_a_taken_name_is_answered_at_its_reply_to(shop, catcher):
    # Breaks caught: the request that cannot be registered (its name is taken) answered with another event,
    # deps or reason than its own, or not at all
    shop.publish("env.requested", env="perf-test", production="shop")
    asked = shop.publish("env.requested", env="perf-test", production="nosuch", reply_to=catcher.url)

    (failed,) = shop.events("env.failed")
    assert failed.data["reason"] == "production 'nosuch' is not described in doppel.yaml (productions: shop)"
    assert (failed.data["production"], failed.data["cause_id"], failed.data["reply_to"]) == (
        "nosuch", asked.id, catcher.url)
    (reply,) = catcher.wait_for(1)
    assert "production 'nosuch' is not described" in reply["text"]
    assert shop.app.registry.living("perf-test").production == "shop"


def test_a_request_the_registry_cannot_take_is_still_answered_at_its_reply_to(shop, catcher, monkeypatch):
    # Break caught: a registry that fails while registering the failed request taken for a registered one (the
    # compensation finds no environment, and the requester never hears)
    def refuse(**_):
        raise OperationalError("INSERT INTO environments", {}, Exception("database is locked"))
    monkeypatch.setattr(shop.app.registry, "request", refuse)

    shop.publish("env.requested", env="perf-test", production="nosuch", reply_to=catcher.url)

    (failed,) = shop.events("env.failed")
    assert failed.data["reply_to"] == catcher.url and "not described in doppel.yaml" in failed.data["reason"]
    (reply,) = catcher.wait_for(1)
    assert "production 'nosuch' is not described" in reply["text"]
