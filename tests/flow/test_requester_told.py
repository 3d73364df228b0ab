"""A request refused at the chain's first step reaches whoever asked, on the in-memory bus and on a real
RabbitMQ alike: `snapshot` ends it in env.failed with the reason, and `notify` posts that to its reply_to
(a loopback server standing in for a chat command's response URL)."""
import pytest

import functions
from clouds.chat import WebhookChat
from clouds.local.driver import LocalDriver
from clouds.local.sample import make_sample_production
from core.deps import Deps
from core.registry import FAILED, Registry
from doppel.config import parse_config
from schemas.envelope import Event
from tests.support.gateway import ReplyCatcher


@pytest.fixture
def chain(bus, tmp_path):
    """The bus serving audit, snapshot and notify for the sample production, and a reply catcher."""
    config = parse_config({"state_dir": str(tmp_path / "state"),
                           "productions": {"shop": make_sample_production(tmp_path / "shop")}}, None)
    bus.deps = Deps(config=config, audit=bus.audit, registry=Registry(bus.engine),
                    cloud=LocalDriver(tmp_path / "state" / "local", config["productions"]),
                    chat=WebhookChat(config["notify"]))
    bus.worker([functions.audit, functions.snapshot, functions.notify])
    catcher = ReplyCatcher()
    yield bus, catcher
    catcher.close()


def request(env: str, production: str, reply_to: str) -> Event:
    return Event(type="env.requested", source="test/chat", data={"env": env, "production": production,
                                                                 "owner": "alice", "reply_to": reply_to})


def test_an_unknown_production_ends_in_env_failed_and_the_requester_is_told_why(chain):
    bus, catcher = chain
    asked = request("perf-test", "nosuch", catcher.url)

    # When a request names a production doppel.yaml does not describe
    bus.publish(asked)
    # (the message is parked after env.failed is published, so notify may answer before the park is counted)
    bus.settle(lambda: catcher.received and bus.audit.events(event_type="env.failed")
               and bus.workers[0].stats.counts["parked:snapshot"] == 1)

    # Then env.failed carries the reason, in the request's chain, and the requester got it
    (failed,) = bus.audit.events(event_type="env.failed")
    assert failed.correlation_id == asked.id and failed.data["step"] == "snapshot"
    assert failed.data["reason"] == "production 'nosuch' is not described in doppel.yaml (productions: shop)"
    (reply,) = catcher.wait_for(1)
    assert reply["text"] == ("Env of perf-test failed at snapshot: production 'nosuch' is not described in "
                             "doppel.yaml (productions: shop)")
    # and `doppel env show perf-test` says why; the message is parked, once
    env = bus.deps.registry.latest("perf-test")
    assert env.state == FAILED and env.owner == "alice" and "is not described in doppel.yaml" in env.reason
    assert bus.workers[0].stats.counts["parked:snapshot"] == 1


def test_a_request_for_a_taken_name_is_answered_at_its_reply_to(chain):
    bus, catcher = chain
    # Given a living environment of that name, requested by someone else
    living, _ = bus.deps.registry.request(name="perf-test", request_id="test/first", production="shop")

    # When another request asks for the same name
    bus.publish(request("perf-test", "shop", catcher.url))
    bus.settle(lambda: catcher.received)

    # Then its requester hears that the name is taken, and the living one is left alone
    (reply,) = catcher.wait_for(1)
    assert reply["text"].startswith("Env of perf-test failed at snapshot: the name perf-test is taken by a "
                                    "living environment (requested, from shop, requested as test/first)")
    assert bus.deps.registry.living("perf-test") == living
