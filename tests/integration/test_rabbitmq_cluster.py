"""The broker on a 3-node RabbitMQ cluster: the first node that answers, the next when it goes, 3 replicas per queue;
and chains through kill -9s and node losses (the short variant of bench/chaos.py)."""
import json
import random
import time

import pytest

from bus.rabbitmq import RabbitBroker
from core.broker import Message, QueueSpec
from tests.support.rabbitmq import CLUSTER_NODES, cluster_ctl, cluster_node_stopped
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.rabbitmq_cluster]


def members(vhost: str) -> dict[str, list[str]]:
    listed = cluster_ctl("list_queues", "-p", vhost, "--formatter", "json", "name", "members")
    return {queue["name"]: sorted(queue["members"]) for queue in json.loads(listed)}


def test_the_first_node_that_answers_is_used_and_the_next_when_it_goes(cluster_amqp_url):
    vhost = cluster_amqp_url.split(",")[0].rsplit("/", 1)[1].split("?")[0].replace("%2F", "/")
    # Given a dead address first, then the cluster's three nodes
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:5699/x," + cluster_amqp_url)
    try:
        assert broker.node == 1 and broker.quorum_group_size == 4
        broker.close()
        broker = RabbitBroker(cluster_amqp_url)
        assert broker.node == 0 and broker.quorum_group_size == 3
        # Then a quorum queue declared through it has a replica on each node
        broker.declare([QueueSpec("cluster.q", "quorum", ("cluster.#",))])
        assert members(vhost)["cluster.q"] == sorted(CLUSTER_NODES)
        broker.publish([Message("cluster.one", b"1", message_id="m1")])

        # When the node it is connected to goes
        with cluster_node_stopped(CLUSTER_NODES[0]):
            wait_for(lambda: broker.reconnects >= 1, 60, "a reconnect to another node", interval=0.2)
            # Then it works on through another node: what was confirmed before is there, and more can be sent
            assert broker.node in (1, 2)
            broker.publish([Message("cluster.two", b"2", message_id="m2")])
            taken = [broker.get("cluster.q"), broker.get("cluster.q")]
            assert [d.message.message_id for d in taken] == ["m1", "m2"]
            for delivery in taken:
                delivery.ack()
    finally:
        broker.close()


def test_when_no_node_answers_the_error_names_every_node_without_its_password(cluster_amqp_url):
    with pytest.raises(Exception, match="not reachable within") as raised:
        RabbitBroker("amqp://guest:s3cret@127.0.0.1:5698/x, amqp://guest:s3cret@127.0.0.1:5699/x", connect_timeout=1.5)
    assert "127.0.0.1:5698" in str(raised.value) and "127.0.0.1:5699" in str(raised.value)
    assert "s3cret" not in str(raised.value)


@pytest.mark.postgresql
@pytest.mark.slow
def test_chains_go_on_through_kill_9s_a_node_restart_and_a_node_down(tmp_path, rabbitmq_cluster, pg_state_server):
    """The short chaos run (bench/chaos.py has the long one): 12 chains with poison messages among them, 3 kill -9s
    of a worker, a broker node restarted, and one node stopped until the chains requested while it was down all
    ended. Measured on 2 shared cores: about 65 s at load ~2, 200 s at load ~20 (node restarts, worker start-up)."""
    from bench.chaos import Plan, chaos
    from core.db import make_engine
    from doppel import migrations
    random.seed(15)
    name = pg_state_server.create()
    db_url = pg_state_server.url(name)
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    engine.dispose()
    try:
        plan = Plan(chains=12, poison_every=4, kills=3, kill_every_s=2, restarts=1, node_down_s=None,
                    node_down_chains=3, feed_every_s=0.2, rows=50, end_timeout_s=240)
        started = time.monotonic()
        result = chaos(plan, tmp_path, db_url, say=lambda text: print(f"{time.monotonic() - started:6.1f} {text}"))
    finally:
        pg_state_server.drop(name)

    assert result["chains ended"] == result["chains started"] == 12, result["not ended"]
    assert result["duplicate side effects"] == []
    assert result["messages lost"] == []
    assert result["resources left"] == []
    assert result["poison messages"] == 3 and result["poison not parked"] == []
    assert result["poison parked with a reason"] == result["poison parkings expected"] >= 3
    assert result["quorum queue replicas"] == [3]
    assert len(result["faults"]) == 5
