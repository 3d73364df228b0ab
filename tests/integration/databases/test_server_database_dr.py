"""A production with a PostgreSQL (or MariaDB) database failed over to its DR copy on the local driver and failed
back, on a real server: the copy's database holds the backup's rows, production's gets the DR writes home."""
from __future__ import annotations

import random

import pytest

from clouds.databases.servers import env_database
from core.cloud import DnsRecord
from core.dr_state import FAILED_OVER, NORMAL
from tests.integration.databases import rental_shop

NAME, HOME, DR_ADDRESS = "shop.example.com", "127.0.0.10", "127.0.0.20"
POLICY = {"shop": {"target": {"env": "shop-dr"}, "alarms": ["shop-down"], "debounce": "10m",
                   "dns": {"records": [{"name": NAME, "type": "A", "value": DR_ADDRESS, "ttl": 60}]}}}


def rentals(shop, database: str | None = None) -> int:
    return shop.query("SELECT count(*) FROM rental", database)[0][0]


def add_rentals(shop, first: int, count: int, database: str | None = None) -> None:
    from clouds.databases import mariadb, postgresql
    engine = mariadb if shop.server.engine == "mariadb" else postgresql
    with engine.connect(shop.server, database or shop.database) as conn:
        cursor = conn.cursor()
        for rental in range(first, first + count):
            rental_shop.add_rental(cursor.execute, rental, random.Random(rental), 60)
        conn.commit()


@pytest.fixture(params=[pytest.param("pg_shop", marks=pytest.mark.postgresql),
                        pytest.param("maria_shop", marks=pytest.mark.mariadb)])
def any_shop(request):
    return request.getfixturevalue(request.param)


def test_a_failover_brings_the_database_into_the_dr_copy_and_a_failback_brings_its_writes_home(any_shop):
    # Breaks caught: the DR copy restored with no place for the server databases, and production's restored
    # with none either (every failover, sync and failback of such a production failed: "holds database rentals,
    # which the target environment has no place for")
    shop = any_shop(dr=POLICY)
    shop.app.cloud.switch_dns(DnsRecord(NAME, "A", HOME, 300))
    at_backup = rentals(shop)
    shop.publish("backup.due", env="shop", reason="scheduled")
    add_rentals(shop, 6000, 3)  # after the backup: lost by the failover (the RPO)

    # When the alarm fires
    shop.publish("monitor.alert", alarm_id="a-shop-1", alarm_name="shop-down", severity="critical",
                 previous="ok", current="alarm", reason="http 5xx")

    # Then the DR copy's own database holds the backup's rows, and the name points at the copy
    failed = shop.events("failover.failed")
    assert failed == [], failed[0].data if failed else None
    assert shop.app.dr_states.get("shop").state == FAILED_OVER
    copy = env_database("shop-dr", "rentals")
    assert rentals(shop, copy) == at_backup
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", DR_ADDRESS, 60)

    # When the DR copy takes writes, and production is failed back
    add_rentals(shop, 7000, 2, copy)
    shop.publish("failback.requested", production="shop")

    # Then production's database holds the DR copy's rows, writes included, and the name points home
    failed = shop.events("failback.failed")
    assert failed == [], failed[0].data if failed else None
    assert shop.app.dr_states.get("shop").state == NORMAL
    assert rentals(shop) == at_backup + 2
    assert shop.query("SELECT count(*) FROM rental WHERE rental_id >= 7000")[0][0] == 2
    assert shop.app.cloud.get_dns(NAME) == DnsRecord(NAME, "A", HOME, 300)
    # and what production held before (the 3 rentals written after the backup) is kept beside, renamed
    (kept,) = [name for name in shop.created if name.startswith(shop.database + "_pre_fb")]
    assert shop.query("SELECT count(*) FROM rental WHERE rental_id >= 6000", kept)[0][0] == 3
