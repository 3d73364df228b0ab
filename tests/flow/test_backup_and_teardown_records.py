"""What a backup and a teardown leave on record, and what a teardown tolerates: the reason a backup was made,
its id derived from its event, the event and reason of each state change, and resources already gone."""
import functions.teardown as teardown
from core.cloud import TAG_ENV, TAG_KEY
from core.ids import derived_backup_id
from core.registry import DELETED, EXPIRING, READY
from doppel.cli.common import build_event
from tests.flow.conftest import CloudOverride


def _backup_done(env: str, backup_id: str = "20260101T000000Z-abcdef"):
    return build_event("backup.done", {"env": env, "backup_id": backup_id, "reason": "expiry", "size": 1,
                                       "sha256": "0" * 64}, source="test")


def test_a_backup_keeps_the_reason_it_was_asked_for_and_says_scheduled_when_none_was_given(shop):
    # Breaks caught: the reason read from another key (every backup said "scheduled"), a misspelt default
    # reason, or the reason not passed to the catalogue (`doppel backup list` shows no reason)
    shop.publish("backup.due", env="shop", reason="manual")
    shop.publish("backup.due", env="shop")

    assert [d.data["reason"] for d in shop.events("backup.done")] == ["manual", "scheduled"]
    assert sorted(e.reason for e in shop.app.backups.list("shop")) == ["manual", "scheduled"]


def test_a_backup_id_is_derived_from_its_event_so_a_retry_writes_the_same_backup(shop):
    # Break caught: no backup id passed to the store, so a retry after a crash writes a second backup
    due = shop.publish("backup.due", env="shop")

    (done,) = shop.events("backup.done")
    assert done.data["backup_id"] == derived_backup_id(due.time, due.id)
    assert [e.id for e in shop.app.backups.list("shop")] == [done.data["backup_id"]]


def test_an_expiry_records_each_state_change_with_the_event_that_caused_it_and_why(shop):
    # Breaks caught: the EXPIRING or DELETED transition without its event (`doppel env show` cannot tie the
    # change to its event) or the EXPIRING one without its reason
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)
    env = shop.app.registry.living("perf-test")
    expired = shop.publish("env.expired", env="perf-test", reason="manual")

    (done,) = shop.events("backup.done")
    moves = {t.to_state: t for t in shop.app.registry.transitions(env)}
    assert (moves[EXPIRING].event_id, moves[EXPIRING].reason) == (expired.id, "expired (manual); backing up")
    assert moves[DELETED].event_id == done.id
    assert moves[DELETED].reason.startswith(f"backed up as {done.data['backup_id']}")


def test_teardown_leaves_alone_an_environment_that_is_not_expiring_or_is_gone(shop):
    # Break caught: the guard's `or` made `and`: a ready environment is deleted on a stray expiry backup.done,
    # and a replay after the deletion fails instead of doing nothing
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)

    assert teardown.handle(_backup_done("perf-test"), shop.app.deps) == []
    assert shop.app.registry.living("perf-test").state == READY
    assert teardown.handle(_backup_done("never-made"), shop.app.deps) == []


def test_teardown_without_a_log_store_still_deletes_the_environment(shop):
    # Break caught: the logs kept even when no log store is configured (teardown fails on None.keep)
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)
    env = shop.app.registry.living("perf-test")
    shop.app.registry.move(env, EXPIRING, reason="test")
    shop.app.deps.logs = None

    (deleted,) = teardown.handle(_backup_done("perf-test"), shop.app.deps)

    assert deleted.type == "env.deleted" and shop.app.registry.living("perf-test") is None


def test_teardown_of_an_environment_whose_stack_is_already_gone_still_deletes_it(shop):
    # Break caught: delete_stack no longer told to ignore a missing stack, so a retry after a crash that
    # had deleted the stack fails forever and the environment is never marked deleted
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)
    env = shop.app.registry.living("perf-test")
    shop.app.registry.move(env, EXPIRING, reason="test")
    shop.app.cloud.delete_stack("perf-test")

    (deleted,) = teardown.handle(_backup_done("perf-test"), shop.app.deps)

    assert deleted.type == "env.deleted" and shop.app.registry.living("perf-test") is None


class _RacingCleanup(CloudOverride):
    """The real cloud, where another cleanup deletes what teardown lists just after it is listed."""

    def find_tagged(self, tag_filter):
        found = self._real.find_tagged(tag_filter)
        for resource in found:
            self._real.delete_resource(resource)
        return found


def test_teardown_tolerates_a_tagged_resource_deleted_by_someone_else_meanwhile(shop):
    # Break caught: delete_resource no longer told to ignore a missing resource, so a snapshot another
    # cleanup removed first makes teardown fail and the environment is never marked deleted
    shop.publish("env.requested", env="perf-test", production="shop", ttl_seconds=3600)
    env = shop.app.registry.living("perf-test")
    shop.app.cloud.snapshot("shop", "perf-test", env.request_id)
    assert shop.app.cloud.find_tagged({TAG_ENV: "perf-test", TAG_KEY: env.request_id})
    shop.app.registry.move(env, EXPIRING, reason="test")
    shop.app.deps.cloud = _RacingCleanup(shop.app.cloud)

    (deleted,) = teardown.handle(_backup_done("perf-test"), shop.app.deps)

    assert deleted.type == "env.deleted" and shop.app.registry.living("perf-test") is None
