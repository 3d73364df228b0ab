"""What `notify` says in chat for each outcome: the words a person reads, checked whole; and where it answers."""
from core.deps import Deps
from core.registry import Registry
from functions.notify import handle, message_for, reply_address
from schemas.envelope import Event
from tests.support.state_db import migrated_engine


def said(event_type: str, **data) -> str:
    return message_for(Event(type=event_type, source="test", data=data))


def test_a_ready_environment_lists_its_endpoints_in_order_and_says_until_when_only_if_it_ends():
    endpoints = {"web": "http://10.0.0.5", "db": "postgresql://10.0.0.6/shop"}

    assert said("env.ready", env="perf-test", endpoints=endpoints, expires_at="2026-12-04T10:00:00Z") == (
        "Environment perf-test is ready until 2026-12-04T10:00:00Z. db: postgresql://10.0.0.6/shop, "
        "web: http://10.0.0.5")
    # an environment without an end (expires_at null) is not said to end
    assert said("env.ready", env="perf-test", endpoints=endpoints, expires_at=None) == (
        "Environment perf-test is ready. db: postgresql://10.0.0.6/shop, web: http://10.0.0.5")


def test_a_failure_names_the_environment_or_else_the_production_it_concerns():
    assert said("env.failed", env="perf-test", production="shop", step="clone", reason="no quota") == (
        "Env of perf-test failed at clone: no quota")
    # a production's own chains (backup, failover, drill) name the production
    assert said("failover.failed", production="shop", step="switch", reason="DNS refused the update") == (
        "Failover of shop failed at switch: DNS refused the update")
    # and a failure concerning neither still says what failed, where and why
    assert said("sync.failed", step="copy", reason="the DR bucket is gone") == (
        "Sync of  failed at copy: the DR bucket is gone")


def test_an_expiry_warning_names_the_owner_only_when_there_is_one():
    assert said("env.expiring", env="perf-test", owner="alice", expires_at="2026-12-04T10:00:00Z") == (
        "Environment perf-test (alice's) ends at 2026-12-04T10:00:00Z: backed up, then deleted. To keep it "
        "longer: /doppel env extend perf-test 8h")
    assert said("env.expiring", env="perf-test", owner=None, expires_at="2026-12-04T10:00:00Z") == (
        "Environment perf-test ends at 2026-12-04T10:00:00Z: backed up, then deleted. To keep it "
        "longer: /doppel env extend perf-test 8h")


def test_a_deletion_gives_the_backup_taken_first_when_there_was_one():
    assert said("env.deleted", env="perf-test", backup_id="perf-test-20261203T101500Z") == (
        "Environment perf-test was deleted (backup perf-test-20261203T101500Z)")
    assert said("env.deleted", env="perf-test", backup_id=None) == "Environment perf-test was deleted"


def test_the_dr_outcomes_give_the_backup_and_whole_seconds_of_rpo_and_rto():
    assert said("failover.done", production="shop", backup_id="shop-20261203T100000Z", rpo_seconds=299.6,
                rto_seconds=41.2) == (
        "Production shop failed over to DR from backup shop-20261203T100000Z: RPO 300 s, RTO 41 s")
    assert said("failback.done", production="shop") == "Production shop is back in its home region"
    assert said("drill.done", production="shop", backup_id="shop-20261203T100000Z", verified=True) == (
        "Restore drill of shop: backup shop-20261203T100000Z restored and verified")
    assert said("drill.done", production="shop", backup_id="shop-20261203T100000Z", verified=False) == (
        "Restore drill of shop: backup shop-20261203T100000Z did NOT verify")


def test_any_other_event_is_told_as_its_type_and_data():
    assert said("backup.done", env="perf-test", backup_id="b1", reason="expiry") == (
        "backup.done: {'env': 'perf-test', 'backup_id': 'b1', 'reason': 'expiry'}")


def test_only_an_event_of_a_request_is_answered_at_a_reply_address(tmp_path):
    registry = Registry(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    refused = dict(env="perf-test", production="shop", step="snapshot", reason="the name is taken",
                   reply_to="https://hooks.example.com/response/1")
    # A refused request's env.failed is answered at the reply_to it carries
    assert reply_address(Event(type="env.failed", source="test", data={**refused, "request": "chat/T1"}),
                         Deps(registry=registry)) == "https://hooks.example.com/response/1"
    # one naming no request is in no requester's chain: no answer, whatever reply_to it carries
    assert reply_address(Event(type="env.failed", source="test", data=refused), Deps(registry=registry)) is None
    # only env.failed carries its own reply_to: another outcome of a request in no registry row is not answered
    assert reply_address(Event(type="backup.failed", source="test", data={**refused, "request": "chat/T1"}),
                         Deps(registry=registry)) is None
    # and a process without the registry answers nobody (and does not fail)
    assert reply_address(Event(type="env.failed", source="test", data={**refused, "request": "chat/T1"}),
                         Deps()) is None


class Said:
    """A chat that keeps what it was asked to post, to the channels and to a reply address."""

    def __init__(self):
        self.sent, self.replies = [], []

    def send(self, text):
        self.sent.append(text)

    def reply(self, url, text):
        self.replies.append((url, text))


def test_a_clones_steps_are_told_to_its_requester_only(tmp_path):
    registry = Registry(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    registry.request(name="perf-test", request_id="chat/T1", production="shop",
                     reply_to="https://hooks.example.com/response/1")
    chat = Said()
    deps = Deps(registry=registry, chat=chat)

    handle(Event(type="snapshot.done", source="test", data={"env": "perf-test", "request": "chat/T1",
                                                            "production": "shop", "snapshot": {}}), deps)
    handle(Event(type="stack.ready", source="test", data={"env": "perf-test", "request": "chat/T1",
                                                          "stack": {}}), deps)

    assert chat.replies == [
        ("https://hooks.example.com/response/1", "perf-test: snapshot of shop taken; making its stack (step 1 of 3)"),
        ("https://hooks.example.com/response/1", "perf-test: stack up; configuring it: new credentials, crons off, "
                                                 "data anonymised (step 2 of 3)")]
    assert chat.sent == []
