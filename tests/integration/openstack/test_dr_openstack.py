"""Production on OpenStack fails over into the DR project of the second region (issue 12, points 3 and 6), on the
real test bed: Glance, Heat, Nova (fake), Swift and Designate behind Keystone, Gnocchi and Aodh, BIND, PostgreSQL.

The DR side is the `doppel-test-dr` entry of clouds.yaml: project doppel-dr in RegionTwo, which sees nothing of
production's project. A sync copies the image production's server boots from into that project through Glance
and the newest backup into that project's Swift; no stack is made there. A Gnocchi threshold alarm in Aodh, whose
action is the gateway's hook, then fails production over: the DR stack is made from tests' templates/dr.yaml
with the copied image, the backup's database is restored where its outputs say (a new database on the test
bed's PostgreSQL: the fake hypervisor runs none), and the name is switched in the DR project's Designate to the
address its outputs give, checked with dig against BIND.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import openstack
import pytest
import yaml

from clouds.databases import postgresql
from clouds.openstack.resources import stack_name
from clouds.stores.swift import SwiftStore
from doppel.cli import main
from tests.integration.databases.conftest import query
from tests.integration.openstack.conftest import CLOUD, PRODUCTION, PRODUCTION_DATABASE, SESSION, production_entry
from tests.integration.openstack.test_designate import active, dig, make_zone, remove_abandoned_zones
from tests.integration.openstack.test_openstack_chain import orders_database, remove_container  # noqa: F401, F811
from tests.support.aodh import aodh_alarm
from tests.support.gateway import Front, back_up, embedded_gateway_env, frozen, publish
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.openstack, pytest.mark.dns, pytest.mark.postgresql]

HERE = Path(__file__).resolve().parent
DR_CLOUD, REGION2 = "doppel-test-dr", "RegionTwo"
ZONE = f"drfo-{SESSION}.doppel-it.test."
NAME = f"shop.{ZONE}".rstrip(".")
HOME, DR_ADDRESS = "127.0.0.10", "127.0.0.30"
DR_ENV, DR_CONTAINER = f"shop-dr-{SESSION}", f"doppel-it-dr-{SESSION}"
DR_DATABASE = f"doppel_it_{DR_ENV}"  # the DR template's db_name: "doppel_it_{env}", so a drill's stack has its own
DRILLS = f"{PRODUCTION[:24]}-drill-"  # functions.drill.scratch_env


@pytest.fixture(scope="module")
def dr_side(openstack_cloud, production_stack):
    """The DR project's connection and a zone in its Designate; what a test left there is removed after."""
    conn = openstack.connect(cloud=DR_CLOUD)
    remove_abandoned_zones(conn)
    zone = make_zone(conn, ZONE)
    try:
        yield conn
    finally:
        found = conn.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=True)
        if found is not None:
            conn.orchestration.delete_stack(found, ignore_missing=True)
        for image in dr_images(conn):
            conn.image.delete_image(image, ignore_missing=True)
        remove_container(conn, DR_CONTAINER)
        conn.dns.delete_zone(zone, ignore_missing=True)
        conn.close()


def dr_stacks(conn) -> list[str]:
    """This session's stacks in the DR project: the DR stack, drills' stacks."""
    return [s.name for s in conn.orchestration.stacks()
            if s.name in (stack_name(DR_ENV),) or s.name.startswith(stack_name(DRILLS))]


def dr_images(conn) -> list:
    return [i for i in conn.image.images(owner=conn.current_project_id)
            if (i.properties or {}).get("doppel-production") == PRODUCTION]


@pytest.fixture
def name_at_home(dr_side):
    """shop.<zone> A 127.0.0.10, TTL 300, set through Designate's API as each test starts."""
    zone = dr_side.dns.find_zone(ZONE)
    found = list(dr_side.dns.recordsets(zone, name=NAME + ".", type="A"))
    recordset = dr_side.dns.update_recordset(found[0], records=[HOME], ttl=300) if found else \
        dr_side.dns.create_recordset(zone, name=NAME + ".", type="A", records=[HOME], ttl=300)
    active(dr_side, lambda: dr_side.dns.get_recordset(recordset, zone), NAME)
    wait_for(lambda: dig(NAME) == [HOME], 30, f"BIND serving {NAME} at {HOME}", interval=0.2)


@pytest.fixture
def shop(tmp_path, monkeypatch, pg_server, orders_database, name_at_home):  # noqa: F811
    """Make an embedded Doppel with its gateway, whose production is the session's stack with its PostgreSQL
    database, and whose DR policy targets the DR project (`flavor` overrides production's there)."""
    embedded_gateway_env(monkeypatch)
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    made, backups = [], f"doppel-it-backups-dr-{uuid.uuid4().hex[:6]}"

    def make(**parameters):
        alarm = f"doppel-dr-os-{uuid.uuid4().hex[:8]}"
        database = {"kind": "postgresql", "name": "orders", "database": "{outputs.db_name}",
                    "host": "{outputs.db_host}", "port": pg_server.port, "user": pg_server.user,
                    "password_env": pg_server.password_env}
        target = {"driver": "openstack", "env": DR_ENV, "cloud": DR_CLOUD, "region": REGION2,
                  "template": str(HERE / "templates/dr.yaml"), "container": DR_CONTAINER,
                  "parameters": {"data_snapshot": "", "db_host": pg_server.host, "db_name": "doppel_it_{env}",
                                 "address": DR_ADDRESS, **parameters}}
        productions = {PRODUCTION: production_entry(databases=[database], db_host=pg_server.host,
                                                    db_name=PRODUCTION_DATABASE)}
        backups_section = {"store": {"type": "swift", "container": backups, "cloud": CLOUD}}
        dr = {PRODUCTION: {"target": target, "alarms": [alarm], "backup": "newest",
                           "dns": {"provider": {"type": "designate", "cloud": DR_CLOUD, "zone": ZONE,
                                                "region_name": REGION2},
                                   "records": [{"name": NAME, "value": "{outputs.address}", "ttl": 60}]}}}
        front = Front(tmp_path / f"doppel-{len(made)}", productions=productions, backups=backups_section, dr=dr)
        front.alarm_name, front.target = alarm, target
        front.document = {"state_dir": str(tmp_path / f"doppel-{len(made)}" / "state"), "productions": productions,
                          "backups": backups_section, "dr": dr}
        made.append(front)
        return front

    yield make
    for front in made:
        front.app.cloud.dr_delete(PRODUCTION, front.target)
        front.close()
    wait_for(lambda: not dr_stacks(openstack.connect(cloud=DR_CLOUD)), 180, "the DR stacks deleted", interval=2)
    postgresql.drop(pg_server, DR_DATABASE)
    for name in query(pg_server, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                      (f"doppel_it_{DRILLS}%",)):
        postgresql.drop(pg_server, name[0])  # a drill's, had it been left
    for name in query(pg_server, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                      (PRODUCTION_DATABASE + "%fb%",)):
        postgresql.drop(pg_server, name[0])  # what a failback kept aside, or left half-done
    remove_container(openstack.connect(cloud=CLOUD), backups)


def until_outcome(front, push_high) -> None:
    """Push high measures until Aodh has notified at least twice (one repeat) and the failover has an outcome."""
    def done():
        alerts = front.app.audit.events(event_type="monitor.alert")
        if len(alerts) >= 2 and any(front.app.audit.events(event_type=outcome)
                                    for outcome in ("failover.done", "failover.failed")):
            return True
        push_high()
        return False
    wait_for(done, 420, "Aodh's alarm, a repeat and the failover's outcome", interval=3)
    front.quiesce()


@pytest.mark.timeout(900)
def test_sync_keeps_dr_cold_an_aodh_alarm_fails_over_into_a_dr_stack_from_the_copied_image_and_failback_goes_home(
        shop, openstack_cloud, production_stack, dr_side, pg_server, orders_database):  # noqa: F811
    front = shop()
    back_up(front, PRODUCTION)
    postgresql_insert = "INSERT INTO public.orders VALUES (41, 'written after the first backup')"
    query(pg_server, orders_database, postgresql_insert)
    newest = back_up(front, PRODUCTION)

    # When the sync runs (twice: the second finds everything there)
    publish(front, "sync.due", production=PRODUCTION)
    (copied,) = dr_images(dr_side)
    publish(front, "sync.due", production=PRODUCTION)

    # Then production's boot image is in the DR project, same checksum, copied once; the backup is readable there
    synced = front.app.audit.events(event_type="sync.done")
    assert [s.data["backup_id"] for s in synced] == [newest, newest]
    assert not front.app.audit.events(event_type="sync.failed")
    server = openstack_cloud.compute.get_server(
        next(r.physical_resource_id for r in openstack_cloud.orchestration.resources(production_stack)
             if r.name == "app"))
    source = openstack_cloud.image.get_image(server.image["id"])
    assert copied.checksum == source.checksum and copied.owner == dr_side.current_project_id != source.owner
    assert [i.id for i in dr_images(dr_side)] == [copied.id]
    store = SwiftStore(DR_CONTAINER, cloud=DR_CLOUD, region_name=REGION2)
    manifest = front.app.backups.find(newest)
    archive = b"".join(store.get_stream(manifest.archive_key))
    assert hashlib.sha256(archive).hexdigest() == manifest.sha256
    # And nothing runs in DR between syncs
    assert dr_side.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=True) is None
    assert [s.name for s in dr_side.compute.servers() if s.name.startswith(stack_name(DR_ENV))] == []

    # When Aodh's alarm fires (and repeats) through the gateway
    with aodh_alarm(openstack_cloud, front.alarm_name, front.url) as alarm:
        until_outcome(front, alarm.push_high)

    # Then exactly one failover, from Aodh's own notification
    alerts = front.app.audit.events(event_type="monitor.alert")
    assert alerts[0].source == "doppel/gateway/aodh" and any(a.data.get("previous") == "alarm" for a in alerts[1:])
    assert [f.data["reason"] for f in front.app.audit.events(event_type="failover.failed")] == []
    (done,) = front.app.audit.events(event_type="failover.done")
    assert done.correlation_id == alerts[0].id
    assert done.data["backup_id"] == newest and done.data["rpo_seconds"] >= 0 < done.data["rto_seconds"]
    # the DR stack exists in the DR project, its server booted from the copied image
    stack = dr_side.orchestration.get_stack(dr_side.orchestration.find_stack(stack_name(DR_ENV)).id)
    assert stack.status == "CREATE_COMPLETE"
    outputs = {o["output_key"]: o["output_value"] for o in stack.outputs}
    assert dr_side.compute.get_server(outputs["server_id"]).image["id"] == copied.id
    assert done.data["endpoints"]["address"] == DR_ADDRESS
    # its database holds the newest backup's rows, the name resolves to its address through Designate and BIND
    assert query(pg_server, DR_DATABASE, "SELECT count(*), max(item) FROM public.orders") == [
        (41, "written after the first backup")]
    assert dig(NAME) == [DR_ADDRESS]
    row = front.app.dr_states.get(PRODUCTION)
    assert row.state == "failed_over" and row.backup_id == newest and row.dr_backup_id == newest
    assert frozen(front, PRODUCTION) == {"sync.due", "backup.due"}

    # When a sync falls due during the failover
    dr_objects = sorted((o.name, o.etag) for o in dr_side.object_store.objects(DR_CONTAINER))
    publish(front, "sync.due", production=PRODUCTION)
    # Then it leaves the DR copy alone: images, the backups there, the DR database
    assert "failed_over" in front.app.audit.events(event_type="sync.done")[-1].data["skipped"]
    assert [i.id for i in dr_images(dr_side)] == [copied.id]
    assert sorted((o.name, o.etag) for o in dr_side.object_store.objects(DR_CONTAINER)) == dr_objects
    assert query(pg_server, DR_DATABASE, "SELECT count(*) FROM public.orders") == [(41,)]

    # When a row is written in DR and the failback is asked for
    query(pg_server, DR_DATABASE, "INSERT INTO public.orders VALUES (42, 'written in DR')")
    publish(front, "failback.requested", production=PRODUCTION)

    # Then production's database holds it, the name points home again, and the DR stack and database go
    assert [f.data["reason"] for f in front.app.audit.events(event_type="failback.failed")] == []
    (back,) = front.app.audit.events(event_type="failback.done")
    assert query(pg_server, orders_database, "SELECT count(*), max(id) FROM public.orders") == [(42, 42)]
    assert query(pg_server, orders_database, "SELECT item FROM public.orders WHERE id = 42") == [("written in DR",)]
    kept = [r[0] for r in query(pg_server, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                (orders_database + "_pre_fb%",))]
    assert len(kept) == 1 and query(pg_server, kept[0], "SELECT count(*) FROM public.orders") == [(41,)]
    assert dig(NAME) == [HOME]
    wait_for(lambda: dr_side.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=True) is None, 180,
             "the DR stack deleted", interval=2)
    assert DR_DATABASE not in {r[0] for r in query(pg_server, "postgres", "SELECT datname FROM pg_database")}
    row = front.app.dr_states.get(PRODUCTION)
    assert row.state == "normal" and row.dr_backup_id is None and front.app.backups.find(back.data["backup_id"])
    assert frozen(front, PRODUCTION) == set()


@pytest.mark.timeout(600)
def test_a_failover_whose_dr_heat_refuses_the_stack_leaves_nothing_keeps_dns_and_says_why(
        shop, openstack_cloud, production_stack, dr_side, pg_server, orders_database, tmp_path, capsys):  # noqa: F811
    missing = f"doppel-no-flavor-{SESSION}"
    front = shop(flavor=missing)
    back_up(front, PRODUCTION)
    publish(front, "sync.due", production=PRODUCTION)

    # `doppel dr failover --dry-run` says what it would do in the DR cloud, and changes nothing
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(front.document))
    capsys.readouterr()
    assert main(["--config", str(config), "dr", "failover", PRODUCTION, "--dry-run", "-o", "json"]) == 0
    plan = {step["step"]: step for step in json.loads(capsys.readouterr().out)}
    (copied,) = dr_images(dr_side)
    assert plan["images"]["detail"] == f"app from {copied.id} (copied by sync)"
    assert plan["stack"]["action"] == "create" and "cloud doppel-test-dr region RegionTwo" in plan["stack"]["detail"]
    assert plan["restore"]["detail"].startswith(front.app.backups.newest(PRODUCTION).id)
    assert plan["dns"]["detail"] == f"{NAME} A: {HOME} (ttl 300) -> {{outputs.address}} (ttl 60)"
    assert dr_side.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=True) is None

    with aodh_alarm(openstack_cloud, front.alarm_name, front.url) as alarm:
        until_outcome(front, alarm.push_high)

    (failed,) = front.app.audit.events(event_type="failover.failed")
    assert failed.data["step"] == "stack", failed.data
    # (the test bed's database password is "doppel-test", so every such string is redacted: "[redacted]-dr")
    assert f"region RegionTwo refused the DR stack {stack_name(DR_ENV)}" in failed.data["reason"]
    assert f"Error validating value '{missing}'" in failed.data["reason"]
    assert not front.app.audit.events(event_type="failover.done")
    assert dr_side.orchestration.find_stack(stack_name(DR_ENV), ignore_missing=True) is None
    assert dig(NAME) == [HOME]
    row = front.app.dr_states.get(PRODUCTION)
    assert row.state == "normal" and row.holder is None and not row.dns_switched
    assert DR_DATABASE not in {r[0] for r in query(pg_server, "postgres", "SELECT datname FROM pg_database")}


@pytest.mark.timeout(600)
def test_a_drill_in_the_dr_region_verifies_the_backup_leaves_nothing_behind_and_is_in_the_report(
        shop, dr_side, pg_server, orders_database, tmp_path, capsys):  # noqa: F811
    front = shop()
    backup = back_up(front, PRODUCTION)
    publish(front, "sync.due", production=PRODUCTION)

    publish(front, "drill.due", production=PRODUCTION)

    assert [f.data["reason"] for f in front.app.audit.events(event_type="drill.failed")] == []
    (done,) = front.app.audit.events(event_type="drill.done")
    assert done.data["backup_id"] == backup and done.data["verified"] is True, front.app.dr_states.drills()
    assert done.data["rto_seconds"] > 0 and done.data["rpo_seconds"] >= 0
    # Nothing is left in the DR project, nor on the database server; the DR stack was never made, DNS unchanged
    wait_for(lambda: not dr_stacks(dr_side), 180, "the drill's stack deleted", interval=2)
    assert query(pg_server, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                 (f"doppel_it_{DRILLS}%",)) == []
    assert dig(NAME) == [HOME] and front.app.dr_states.get(PRODUCTION).state == "normal"
    assert front.app.backups.catalogue.get(backup).verify_ok

    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(front.document))
    capsys.readouterr()
    assert main(["--config", str(config), "dr", "report", "-o", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["production"] == PRODUCTION and row["backup_id"] == backup and row["verified"] is True
