"""DOPPEL_AMQP_URL naming a RabbitMQ cluster's nodes: read as a list, and no node's password shown."""
from core.secrets import secret_values
from doppel.cli.config import masked_url
from doppel.config import parse_config

URLS = "amqp://doppel:first-pass@mq1:5672/doppel,amqp://doppel:second-pass@mq2:5672/doppel"


def test_the_nodes_are_read_in_order_and_one_url_stays_one(monkeypatch):
    monkeypatch.setenv("DOPPEL_AMQP_URL", URLS + ", amqp://doppel:third-pass@mq3:5672/doppel")
    assert [url.split("@")[1] for url in parse_config({}, None).amqp_urls] == [
        "mq1:5672/doppel", "mq2:5672/doppel", "mq3:5672/doppel"]
    monkeypatch.setenv("DOPPEL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    assert parse_config({}, None).amqp_urls == ["amqp://guest:guest@127.0.0.1:5672/%2F"]
    monkeypatch.delenv("DOPPEL_AMQP_URL")
    assert parse_config({}, None).amqp_urls == []


def test_every_nodes_password_is_masked(monkeypatch):
    shown = masked_url(URLS)
    assert "first-pass" not in shown and "second-pass" not in shown and shown.count("@mq") == 2
    monkeypatch.setenv("DOPPEL_AMQP_URL", URLS)
    secrets = secret_values()
    assert "first-pass" in secrets and "second-pass" in secrets
