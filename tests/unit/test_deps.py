"""Deps bound to one event: what a function may emit, and how its events join the chain."""
import pytest

from core.deps import Deps
from core.errors import PermanentError
from schemas.envelope import Event


def requested() -> Event:
    return Event(type="env.requested", source="test", data={"env": "perf", "production": "shop"})


def test_a_function_cannot_emit_a_type_it_does_not_declare():
    # Given deps bound for a function that declares only env.deleted
    deps = Deps().for_event(requested(), "teardown", "k", emits=("env.deleted",))
    # When it emits another type, then it is refused, naming what it declares
    with pytest.raises(PermanentError, match=r"backup\.pruned.*EMITS: env\.deleted"):
        deps.emit("backup.pruned", env="perf", backup_id="20261122T031500Z-a1b2c3", removed=[])


def test_a_declared_type_joins_the_chain_of_its_cause():
    cause = requested()
    deps = Deps().for_event(cause, "teardown", "k", emits=("env.deleted",))
    event = deps.emit("env.deleted", env="perf")
    assert event.type == "env.deleted"
    assert event.correlationid == cause.correlationid
    # a replay of the same cause emits the same id, so the next function's ledger absorbs it
    again = Deps().for_event(cause, "teardown", "k", emits=("env.deleted",)).emit("env.deleted", env="perf")
    assert again.id == event.id


def test_every_function_declares_what_it_emits_and_no_function_restates_the_default_key():
    import functions
    for function in functions.FUNCTIONS:
        assert isinstance(function.EMITS, tuple), function.NAME
        key = getattr(function, "idempotency_key", None)
        if key is not None:  # a key of its own must differ from the worker's default (source:id)
            event = requested()
            try:
                assert key(event) != f"{event.source}:{event.id}", function.NAME
            except KeyError:
                pass  # keyed on data this event does not carry: not the default
