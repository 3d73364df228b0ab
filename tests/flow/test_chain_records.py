"""What the clone and configure steps record and say besides reaching env.ready, on the embedded bus, the sample
production and the local driver: the registry's history, the credentials made for an environment, the endpoints
published, and what a stack the cloud did not make as asked leads to. Each test names the breaks it catches."""
import re
from dataclasses import replace
from pathlib import Path

from core.cloud import CREATE_FAILED
from core.registry import FAILED
from tests.flow.conftest import CloudOverride
from tests.flow.test_env_logs import generated_password


def test_a_request_runs_each_step_once_and_its_history_names_the_event_behind_each_move(shop):
    # Breaks caught: a move of the registry recorded without the event that made it (clone's to cloning,
    # configure's to configuring and to ready); configure failing after its move to ready (a retry then says
    # ready from the registry, so the chain still ends there, one retry late)
    request = shop.publish("env.requested", env="perf-test", production="shop")

    assert not [count for count in shop.worker.stats.counts if count.startswith(("retried:", "parked:"))]
    (snapshot_done,), (stack_ready,) = shop.events("snapshot.done"), shop.events("stack.ready")
    env = shop.app.registry.living("perf-test")
    assert [(t.to_state, t.event_id) for t in shop.app.registry.transitions(env)][1:] == [
        ("snapshotting", request.id), ("cloning", snapshot_done.id), ("configuring", stack_ready.id),
        ("ready", stack_ready.id)]


def test_an_environments_credentials_are_its_own_and_what_it_logs_is_masked_where_they_were_never_seen(shop):
    # Breaks caught: a generated credential of another strength than the drivers' (24 random bytes, 32 URL-safe
    # characters); its print not kept for the environment's request, so its logs, read by a process that never
    # held the value (`doppel env logs`, a teardown on another worker), show it in clear
    shop.publish("env.requested", env="perf-test", production="shop")
    env = shop.app.registry.living("perf-test")
    password = generated_password(Path(env.endpoints["root"]))

    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", password)
    seen_elsewhere = shop.app.logs.logbook.secrets_of(env.request_id)  # the prints only, from the state database
    assert seen_elsewhere.mask(f"connecting with password={password} ok") == \
        "connecting with password=[redacted] ok"


class OutputsMore(CloudOverride):
    """Configure answers with two more outputs, as a Heat template's may: a Keystone URL, and the environment's
    own database password."""

    def configure(self, env, stack, policy, secrets):
        return {**self._real.configure(env, stack, policy, secrets),
                "auth_url": "https://keystone.example.com:5000/v3", "db_password": secrets["db_password"]}


def test_an_output_named_like_a_credential_is_published_and_one_holding_the_envs_credential_is_masked(shop):
    # Break caught: endpoints masked by their names (auth_url lost from the registry, env.ready and chat)
    # instead of by the credentials they hold
    shop.app.deps.cloud = OutputsMore(shop.app.cloud)

    shop.publish("env.requested", env="perf-test", production="shop")

    env = shop.app.registry.living("perf-test")
    (ready,) = shop.events("env.ready")
    for endpoints in (env.endpoints, ready.data["endpoints"]):
        assert endpoints["auth_url"] == "https://keystone.example.com:5000/v3"
        assert endpoints["db_password"] == "[redacted]"


class AnswersAnEarlierBuild(CloudOverride):
    """create_stack answers with the stack of an earlier build of the environment (rebuilt since)."""

    def create_stack(self, env, snapshot, parameters, key):
        return replace(self._real.create_stack(env, snapshot, parameters, key), id="stack-of-an-earlier-build")


def test_a_stack_ready_for_a_build_that_is_no_longer_the_environments_configures_nothing(shop):
    # Break caught: configure not telling the cloud which build it means, so the environment that is there now
    # is configured, and said ready, on the word of an event about another one
    shop.app.deps.cloud = AnswersAnEarlierBuild(shop.app.cloud)

    shop.publish("env.requested", env="perf-test", production="shop")

    (failed,) = shop.events("env.failed")
    assert failed.data["step"] == "configure" and "it was rebuilt by another request" in failed.data["reason"]
    assert shop.events("env.ready") == [] and shop.app.registry.latest("perf-test").state == FAILED


class StackFails(CloudOverride):
    """create_stack answers that the stack failed to create, with the cloud's reason (as Heat does)."""

    def create_stack(self, env, snapshot, parameters, key):
        made = self._real.create_stack(env, snapshot, parameters, key)
        return replace(made, status=CREATE_FAILED, status_reason="Resource CREATE failed: quota exceeded")


def test_a_stack_that_failed_to_create_fails_the_request_at_once_with_the_clouds_reason(shop):
    # Break caught: the failure said without the environment or the cloud's reason (env.failed, the registry
    # and chat would only say that something failed)
    shop.app.deps.cloud = StackFails(shop.app.cloud)

    shop.publish("env.requested", env="perf-test", production="shop")

    assert shop.worker.stats.counts["retried:clone"] == 0
    (failed,) = shop.events("env.failed")
    assert failed.data["step"] == "clone"
    assert failed.data["reason"] == "stack for perf-test failed to create: Resource CREATE failed: quota exceeded"
    env = shop.app.registry.latest("perf-test")
    assert env.state == FAILED and env.reason == f"clone: {failed.data['reason']}"
    assert shop.app.registry.living("perf-test") is None
