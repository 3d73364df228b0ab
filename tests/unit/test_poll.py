"""The poll function on the local driver and a real registry: each snapshotting or cloning environment whose
cloud operation has ended moves one step on, and only its own request's resources count."""
from dataclasses import replace

import pytest

import functions.poll as poll
from clouds.local import LocalDriver
from clouds.local.sample import make_sample_production
from core.cloud import CREATE_FAILED, CREATE_IN_PROGRESS, SNAPSHOT_FAILED
from core.deps import Deps
from core.registry import CLONING, FAILED, SNAPSHOTTING, Registry
from schemas.envelope import Event
from tests.support.state_db import migrated_engine


class Reports:
    """The real local driver, except the statuses this test says a snapshot or a stack has (and why), and, when
    told, tagged resources listed stacks first, as a cloud of several regions lists them (region by region)."""

    def __init__(self, real: LocalDriver):
        self._real, self.snapshot_says, self.stack_says = real, None, None
        self.snapshot_reason, self.stacks_first = "quota exceeded", False

    def __getattr__(self, name):
        return getattr(self._real, name)

    def find_tagged(self, tag_filter):
        found = self._real.find_tagged(tag_filter)
        return sorted(found, key=lambda resource: resource.kind != "stack") if self.stacks_first else found

    def snapshot_status(self, snapshot_id):
        found = self._real.snapshot_status(snapshot_id)
        return replace(found, status=self.snapshot_says, status_reason=self.snapshot_reason) if self.snapshot_says \
            else found

    def stack_status(self, env):
        found = self._real.stack_status(env)
        return replace(found, status=self.stack_says, status_reason="no valid host") if found and self.stack_says \
            else found


@pytest.fixture
def world(tmp_path):
    production = make_sample_production(tmp_path / "prod" / "shop", rows=20)
    cloud = Reports(LocalDriver(tmp_path / "state", {"shop": production}))
    registry = Registry(migrated_engine(f"sqlite:///{tmp_path / 'doppel.db'}"))
    deps = Deps(config={"productions": {"shop": production}}, cloud=cloud, registry=registry)
    return deps, cloud, registry


def tick(deps, event: Event | None = None) -> list:
    event = event or Event(type="poll.tick", source="test", data={})
    return poll.handle(event, deps.for_event(event, poll.NAME, event.id, poll.EMITS))


def env_in(registry, name: str, state: str, request: str):
    env, _ = registry.request(name=name, request_id=request, production="shop")
    if state == CLONING:
        env = registry.move(env, SNAPSHOTTING)
    return registry.move(env, state)


def test_a_finished_snapshot_moves_its_environment_to_snapshot_done(world):
    deps, cloud, registry = world
    env = env_in(registry, "perf-test", SNAPSHOTTING, "req-1")
    snapshot = cloud.snapshot("shop", "perf-test", "req-1")
    cloud.create_stack("perf-test", snapshot, {}, "req-1")  # made before a crash: tagged too, but not a snapshot

    (done,) = tick(deps)

    assert done.type == "snapshot.done" and done.data["snapshot"]["id"] == snapshot.id
    assert {k: v for k, v in done.data.items() if k != "snapshot"} == {"env": "perf-test", "production": "shop",
                                                                       "request": env.request_id}


def test_a_snapshot_of_another_request_is_not_this_environments(world):
    deps, cloud, registry = world
    env_in(registry, "perf-test", SNAPSHOTTING, "req-2")
    cloud.snapshot("shop", "perf-test", "req-1")  # an earlier request's, left behind

    assert tick(deps) == []


def test_a_failed_snapshot_fails_its_environment_and_deletes_what_it_made(world):
    deps, cloud, registry = world
    env_in(registry, "perf-test", SNAPSHOTTING, "req-1")
    cloud.snapshot("shop", "perf-test", "req-1")
    cloud.snapshot_says = SNAPSHOT_FAILED

    (failed,) = tick(deps)

    assert failed.type == "env.failed" and failed.data["step"] == "snapshot"
    assert failed.data["reason"] == "quota exceeded"
    assert registry.latest("perf-test").state == FAILED and cloud.find_tagged({"doppel-env": "perf-test"}) == []


def test_a_finished_stack_moves_its_environment_to_stack_ready_and_one_still_building_waits(world):
    deps, cloud, registry = world
    env_in(registry, "perf-test", CLONING, "req-1")
    snapshot = cloud.snapshot("shop", "perf-test", "req-1")
    cloud.create_stack("perf-test", snapshot, {}, "req-1")
    env_in(registry, "other", CLONING, "req-9")  # no stack yet

    (ready,) = tick(deps)

    assert ready.type == "stack.ready" and ready.data["env"] == "perf-test" and ready.data["request"] == "req-1"
    assert ready.data["stack"] == cloud.stack_status("perf-test").to_dict()
    cloud.stack_says = CREATE_IN_PROGRESS
    assert tick(deps) == []


def test_a_stack_of_another_request_is_left_alone(world):
    deps, cloud, registry = world
    snapshot = cloud.snapshot("shop", "perf-test", "req-1")
    cloud.create_stack("perf-test", snapshot, {}, "req-1")
    env_in(registry, "perf-test", CLONING, "req-2")

    assert tick(deps) == []
    assert cloud.stack_status("perf-test") is not None


def test_a_failed_stack_fails_its_environment_and_deletes_it(world):
    deps, cloud, registry = world
    env_in(registry, "perf-test", CLONING, "req-1")
    snapshot = cloud.snapshot("shop", "perf-test", "req-1")
    cloud.create_stack("perf-test", snapshot, {}, "req-1")
    cloud.stack_says = CREATE_FAILED

    (failed,) = tick(deps)

    assert failed.type == "env.failed" and failed.data["step"] == "clone"
    assert failed.data["reason"] == "stack failed to create: no valid host"
    assert registry.latest("perf-test").state == FAILED and cloud._real.stack_status("perf-test") is None


def test_a_snapshot_listed_after_another_kind_of_tagged_resource_still_counts(world):
    # Break caught: the look through an environment's tagged resources stopping at the first that is not a
    # snapshot (a cloud of several regions lists one region's stacks before the next region's snapshots)
    deps, cloud, registry = world
    env_in(registry, "perf-test", SNAPSHOTTING, "req-1")
    snapshot = cloud.snapshot("shop", "perf-test", "req-1")
    cloud.create_stack("perf-test", snapshot, {}, "req-1")
    cloud.stacks_first = True

    (done,) = tick(deps)

    assert done.type == "snapshot.done" and done.data["snapshot"]["id"] == snapshot.id


def test_a_cloning_environment_whose_stack_is_not_there_yet_holds_up_no_other(world):
    # Break caught: the look through the cloning environments stopping at the first without its stack
    deps, cloud, registry = world
    env_in(registry, "early", CLONING, "req-0")  # no stack yet; registered first, so the registry lists it first
    env_in(registry, "perf-test", CLONING, "req-1")
    cloud.create_stack("perf-test", cloud.snapshot("shop", "perf-test", "req-1"), {}, "req-1")

    (ready,) = tick(deps)

    assert ready.type == "stack.ready" and ready.data["env"] == "perf-test"


def test_one_tick_fails_every_environment_whose_cloud_operation_failed_each_naming_the_tick_and_why(world):
    # Breaks caught: a later failure's events replacing those of the environments before it; env.failed not
    # naming the tick as its cause; a snapshot failed without a reason from the cloud failing with none
    deps, cloud, registry = world
    for name in ("snap-a", "snap-b"):
        env_in(registry, name, SNAPSHOTTING, f"req-{name}")
        cloud.snapshot("shop", name, f"req-{name}")
    for name in ("clone-a", "clone-b"):
        env_in(registry, name, CLONING, f"req-{name}")
        cloud.create_stack(name, cloud.snapshot("shop", name, f"req-{name}"), {}, f"req-{name}")
    cloud.snapshot_says, cloud.snapshot_reason, cloud.stack_says = SNAPSHOT_FAILED, None, CREATE_FAILED
    event = Event(type="poll.tick", source="test", data={})

    failed = tick(deps, event)

    assert sorted((e.type, e.data["env"], e.data["step"], e.data["reason"], e.data["cause_id"]) for e in failed) == [
        ("env.failed", "clone-a", "clone", "stack failed to create: no valid host", event.id),
        ("env.failed", "clone-b", "clone", "stack failed to create: no valid host", event.id),
        ("env.failed", "snap-a", "snapshot", "snapshot failed", event.id),
        ("env.failed", "snap-b", "snapshot", "snapshot failed", event.id)]
    assert {registry.latest(name).state for name in ("snap-a", "snap-b", "clone-a", "clone-b")} == {FAILED}
