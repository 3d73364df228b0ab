"""Which OpenStack notifications become poll ticks, and for which environment (no service needed)."""
import json

import pytest

from clouds.openstack.notifications import tick_for, translate
from schemas.production import ProductionConfigError, load_productions


def oslo(event_type: str, payload: dict, message_id: str = "m-1") -> bytes:
    """A notification as oslo.messaging's messagingv2 driver puts it on the wire."""
    inner = {"event_type": event_type, "payload": payload, "message_id": message_id, "priority": "INFO"}
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def test_a_doppel_stack_finishing_becomes_a_tick_for_its_environment():
    completion = translate(oslo("orchestration.stack.create.end", {"stack_name": "doppel-perf-test"}))
    assert completion.target == "perf-test" and completion.event_type == "orchestration.stack.create.end"


def test_a_snapshot_image_is_traced_to_its_environment_by_tags_or_name():
    assert translate(oslo("image.activate", {"properties": {"doppel-env": "qa"}})).target == "qa"
    assert translate(oslo("image.activate", {"name": "snap-pre-prod-0123456789ab-app"})).target == "pre-prod"


def test_notifications_doppel_does_not_wait_for_are_ignored():
    assert translate(oslo("compute.instance.update", {"stack_name": "doppel-x"})) is None
    assert translate(b"not json") is None


def test_a_redelivered_notification_makes_the_same_tick_and_another_notification_another():
    body = oslo("orchestration.stack.create.end", {"stack_name": "doppel-a"}, "same-id")
    first, redelivered = tick_for(translate(body)), tick_for(translate(body))  # read twice, as on a redelivery
    other = tick_for(translate(oslo("orchestration.stack.create.end", {"stack_name": "doppel-a"}, "other-id")))
    assert first.id == redelivered.id != other.id
    assert first.data == {"target": "a"}


def test_an_openstack_production_is_checked_by_its_own_schema():
    entry = {"driver": "openstack", "cloud": "c", "stack": "s", "template": "/t.yaml",
             "parameters": {"image": "{snapshot.image.app}", "pw": "{secrets.db}"}, "clone": {"secrets": ["db"]}}
    assert load_productions({"shop": entry})["shop"]["cloud"] == "c"
    with pytest.raises(ProductionConfigError, match="not declared"):
        load_productions({"shop": {**entry, "clone": {}}})
