"""A failover switches production's name on a real BIND 9 (tests/services/bind.sh), and the failback switches
it back; both checked with the real dig against the server, not through Doppel's own reads."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.flow.conftest import Shop
from tests.integration.test_dns_bind import KEY, PORT, SERVER, SHOP, ZONE, bind_server, dig, dig_ttl, nsupdate  # noqa: F401 (fixture)

pytestmark = pytest.mark.dns


@pytest.fixture
def bind_shop(tmp_path, monkeypatch, bind_server):  # noqa: F811
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    monkeypatch.setenv("DOPPEL_TSIG_SECRET", Path(bind_server["secret_file"]).read_text().strip())
    nsupdate(bind_server, f"update delete {SHOP} A", f"update add {SHOP} 300 A 127.0.0.10")
    provider = {"type": "rfc2136", "server": SERVER, "port": PORT, "zone": ZONE, "key_name": KEY,
                "key_secret_env": "DOPPEL_TSIG_SECRET"}
    shop = Shop(tmp_path, dr={"shop": {"target": {"env": "shop-dr"}, "alarms": ["shop-down"],
                                       "dns": {"provider": provider,
                                               "records": [{"name": SHOP, "value": "127.0.0.20", "ttl": 60}]}}})
    yield shop
    shop.app.close()


def test_a_failover_switches_the_name_on_bind_and_the_failback_puts_it_back(bind_shop):
    shop = bind_shop
    assert dig(SHOP) == ["127.0.0.10"]
    shop.publish("backup.due", env="shop")

    shop.publish("monitor.alert", alarm_id="a-1", alarm_name="shop-down", previous="ok", current="alarm")

    assert len(shop.events("failover.done")) == 1
    assert dig(SHOP) == ["127.0.0.20"] and dig_ttl(SHOP) == 60
    previous = shop.app.dr_states.get("shop").previous_dns
    assert previous == [{"name": SHOP, "type": "A",
                         "record": {"name": SHOP, "type": "A", "value": "127.0.0.10", "ttl": 300}}]

    shop.publish("failback.requested", production="shop")

    assert len(shop.events("failback.done")) == 1
    assert dig(SHOP) == ["127.0.0.10"] and dig_ttl(SHOP) == 300
