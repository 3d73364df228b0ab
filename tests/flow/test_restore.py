"""The restore function on the embedded bus, each way in: over a living environment, into a new name (the
production found from the backup when the request does not name it), and the requests it refuses with what to do
instead."""
import errno
import sqlite3

from core.registry import READY
from tests.flow.conftest import content_digest


def backed_up_env(shop, name: str = "perf") -> str:
    """A ready environment of the sample production, backed up once; the backup's id."""
    shop.publish("env.requested", env=name, production="shop", ttl_seconds=3600)
    shop.publish("backup.due", env=name)
    (backup,) = [e.id for e in shop.app.backups.list(name)]
    return backup


def test_a_backup_restored_over_its_living_environment_replaces_the_data_changed_since(shop):
    backup = backed_up_env(shop)
    env = shop.app.registry.living("perf")
    root = shop.app.cloud.restore_target("perf")
    as_backed_up = content_digest(root)
    (root / "app/index.html").write_text("changed after the backup")
    (root / "app/added-after.txt").write_text("not in the backup")
    with sqlite3.connect(root / "data/shop.db") as conn:
        conn.execute("DELETE FROM customers")

    # When the backup is restored over it (no production named: the living environment's own is used)
    shop.publish("restore.requested", backup_id=backup, env="perf")

    # Then its data is the backup's again, whole, and it is the same environment, still ready
    assert [(d.data["backup_id"], d.data["env"]) for d in shop.events("restore.done")] == [(backup, "perf")]
    assert shop.events("restore.failed") == []
    assert content_digest(root) == as_backed_up
    again = shop.app.registry.living("perf")
    assert (again.id, again.request_id, again.state) == (env.id, env.request_id, READY)


def test_a_production_backup_is_refused_over_a_living_environment_where_nothing_would_anonymise_it(shop):
    shop.publish("env.requested", env="perf", production="shop", ttl_seconds=3600)
    root = shop.app.cloud.restore_target("perf")
    before = content_digest(root)
    shop.publish("backup.due", env="shop")
    (backup,) = [e.id for e in shop.app.backups.list("shop")]

    shop.publish("restore.requested", backup_id=backup, env="perf")

    (failed,) = shop.events("restore.failed")
    assert failed.data["env"] == "perf"
    assert failed.data["reason"] == (
        f"backup {backup} is of the production shop: over the living environment perf it would land as it is, not "
        "anonymised; restore it into a new name, which is configured and anonymised like a clone")
    assert shop.events("restore.done") == [] and content_digest(root) == before


def test_a_production_name_is_refused_with_the_command_that_brings_production_back(shop):
    backup = backed_up_env(shop)
    production_before = content_digest(shop.production)

    shop.publish("restore.requested", backup_id=backup, env="shop")

    (failed,) = shop.events("restore.failed")
    assert failed.data["env"] == "shop" and failed.data["reason"] == (
        "shop is a production; restore into an environment's name, or bring production back with "
        "`doppel dr failback` (docs/dr.md)")
    assert content_digest(shop.production) == production_before


def test_into_a_new_name_the_production_is_found_from_the_backup_of_an_environment_or_of_production_itself(shop):
    of_env = backed_up_env(shop)
    shop.publish("backup.due", env="shop")
    (of_production,) = [e.id for e in shop.app.backups.list("shop")]

    # When each is restored into a new name without naming the production
    shop.publish("restore.requested", backup_id=of_env, env="from-env")
    shop.publish("restore.requested", backup_id=of_production, env="from-prod")

    # Then each is an environment of the production the backup came from, made from that backup, ready
    for name, backup in (("from-env", of_env), ("from-prod", of_production)):
        env = shop.app.registry.living(name)
        assert (env.production, env.data_version, env.state) == ("shop", backup, READY), env
    assert sorted((d.data["env"], d.data["backup_id"]) for d in shop.events("restore.done")) == [
        ("from-env", of_env), ("from-prod", of_production)]


def test_a_production_doppel_yaml_does_not_describe_is_refused_naming_the_ones_it_does(shop):
    backup = backed_up_env(shop)

    shop.publish("restore.requested", backup_id=backup, env="elsewhere", production="gone")

    (failed,) = shop.events("restore.failed")
    assert failed.data["reason"] == (
        f"backup {backup} is of 'gone', which doppel.yaml does not describe (productions: shop); name the "
        "production it is a copy of")
    assert shop.app.registry.latest("elsewhere") is None


def test_a_filesystem_refusal_no_retry_mends_fails_at_once_naming_the_backup_the_target_and_the_path(shop, monkeypatch):
    """The classification of the handler's OSErrors (a read-only disk cannot be made here without mounting one):
    the store's restore is replaced by one that meets EROFS."""
    backup = backed_up_env(shop)
    tried = []

    def refuse(backup_id, into, databases=None):
        tried.append(backup_id)
        raise OSError(errno.EROFS, "Read-only file system", str(into))
    monkeypatch.setattr(shop.app.backups, "restore", refuse)

    shop.publish("restore.requested", backup_id=backup, env="perf")

    (failed,) = shop.events("restore.failed")
    assert failed.data["reason"].startswith(f"restore of {backup} into perf: Read-only file system (")
    assert tried == [backup]  # permanent: not retried


def test_a_restore_into_a_new_name_run_again_after_it_finished_changes_nothing(shop):
    import functions.restore as restore
    from schemas.envelope import Event
    # Given a restore into a new name that finished, whose worker (say) died before its ack
    backup = backed_up_env(shop)
    shop.publish("restore.requested", backup_id=backup, env="copy")
    (request,) = shop.events("restore.requested")
    env = shop.app.registry.living("copy")
    root = shop.app.cloud.restore_target("copy")
    (root / "app/written-since.txt").write_text("the environment's own work since it was made")
    event = Event(type="restore.requested", source=request.source, data=request.data, id=request.id,
                  correlationid=request.correlation_id)

    # When the restore runs again on the same event (its claim taken over)
    again = restore.handle(event, shop.app.deps.for_event(event, "restore", env.request_id))

    # Then it sees its own finished environment: nothing emitted, nothing restored over it
    assert again == []
    assert (root / "app/written-since.txt").exists()
    assert shop.app.registry.living("copy").state == READY
