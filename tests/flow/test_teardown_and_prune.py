"""The ends of an environment and of its backups on the embedded bus: teardown deletes everything made for the
environment and forgets its expiry; prune deletes the backups the retention policy does not keep."""
import pytest

from clouds.backups import list_backups
from core.cloud import TAG_ENV, TAG_KEY
from tests.flow.conftest import Shop


@pytest.fixture
def keep_two(tmp_path, monkeypatch):
    """The sample production, whose backups keep only the last two."""
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    shop = Shop(tmp_path, backups={"retention": {"keep_last": 2, "daily": 0, "weekly": 0, "monthly": 0}})
    yield shop
    shop.app.close()


@pytest.mark.both_databases  # CI runs it on PostgreSQL too
def test_teardown_deletes_what_was_tagged_for_the_environment_and_cancels_its_expiry(shop):
    # Given a ready environment with a TTL, and a snapshot tagged for it that a crashed retry left behind
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)
    env = shop.app.registry.living("perf-test")
    assert [e.env for e in shop.app.deps.scheduler.expiries()] == ["perf-test"]
    shop.app.cloud.snapshot("shop", "perf-test", env.request_id)
    assert "snapshot" in [r.kind for r in shop.app.cloud.find_tagged({TAG_ENV: "perf-test", TAG_KEY: env.request_id})]

    # When it is deleted before its TTL (as `doppel env delete` asks)
    shop.publish("env.expired", env="perf-test", reason="manual")

    # Then nothing made for it is left, and no expiry job waits to expire a later environment of that name
    assert len(shop.events("env.deleted")) == 1
    assert shop.app.cloud.find_tagged({TAG_ENV: "perf-test"}) == []
    assert shop.app.deps.scheduler.expiries() == []


def test_a_routine_backup_prunes_what_the_retention_policy_does_not_keep(keep_two):
    shop = keep_two
    made = []
    for _ in range(3):
        before = {e.id for e in shop.app.backups.list("shop")}
        shop.publish("backup.due", env="shop")
        made += [e.id for e in shop.app.backups.list("shop") if e.id not in before]

    # Then the third backup's prune removed the oldest: from the catalogue and from the store
    assert len(made) == 3
    pruned = shop.events("backup.pruned")
    assert [p.data["removed"] for p in pruned] == [[], [], [made[0]]] and pruned[-1].data["kept"] == 2
    assert [e.id for e in shop.app.backups.list("shop")] == made[1:]
    assert sorted(m.backup_id for m in list_backups(shop.app.backups.store, "shop")) == sorted(made[1:])


def test_a_failed_backup_is_said_naming_what_was_backed_up_and_the_event_it_answers(shop):
    # Breaks caught: backup.failed without the environment (or production) it was backing up, so chat says
    # "Backup of  failed"; without the event it answers, so `doppel events` cannot tie it to its backup.due
    class Unreachable:
        name = "unreachable"

        def __getattr__(self, _name):
            raise ConnectionError("object store unreachable")

    shop.app.backups.store = Unreachable()
    due = shop.publish("backup.due", env="shop")

    (failed,) = shop.events("backup.failed")
    assert (failed.data["env"], failed.data["step"], failed.data["cause_id"]) == ("shop", "backup", due.id)
    assert "object store unreachable" in failed.data["reason"]
