"""validate_in's quick check never lets through what marshmallow would refuse, and takes ordinary events."""
import math
import random

import pytest
from marshmallow import INCLUDE, Schema, fields, validate, validates_schema

from schemas.events import _QUICK_CHECKS, SCHEMAS, _quick_check, validate_in

# Values of every JSON type and then some, valid and invalid for the fields and validators in use
CANDIDATES = ["shop", "ab", "a", "Shop", "env-1", "x" * 41, "x" * 5000, "", "alarm", "ok", "insufficient data", "ttl",
              "manual",
              "scheduled", "12", "1.5", b"bytes", 0, 1, -1, 7, 2 ** 60, 1.5, 0.0, -2.5, math.nan, math.inf, True,
              False, None, {}, {"a": 1}, [], ["a", "b"], ["a", 1], [None]]


def likely_valid(rng: random.Random, field):
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            return rng.choice(list(validator.choices))
    for kind, value in ((fields.String, "shop"), (fields.Integer, 7), (fields.Float, 2.5), (fields.Boolean, True),
                        (fields.Dict, {"a": 1}), (fields.List, ["a"])):
        if isinstance(field, kind):
            return value
    raise AssertionError(f"no likely value for {type(field).__name__}")


def random_data(rng: random.Random, schema_class) -> dict:
    """Each field absent, or a value likely valid for it, or any candidate at all."""
    data = {}
    for name, field in schema_class._declared_fields.items():
        draw = rng.random()
        if draw < 0.45:
            data[name] = likely_valid(rng, field)
        elif draw < 0.9:
            data[name] = rng.choice(CANDIDATES)
    if rng.random() < 0.3:
        data["extra"] = rng.choice(CANDIDATES)  # unknown fields are tolerated on the way in
    return data


@pytest.mark.parametrize("event_type", sorted(SCHEMAS))
def test_the_quick_check_accepts_only_what_marshmallow_accepts(event_type):
    schema_class = SCHEMAS[event_type]
    accepts = _QUICK_CHECKS[schema_class]
    schema = schema_class(unknown=INCLUDE)
    rng = random.Random(event_type)
    accepted = 0
    for _ in range(3000):
        data = random_data(rng, schema_class)
        if accepts(data):
            accepted += 1
            assert schema.validate(data) == {}, data
    # and it is used: a share of the random data passes it (the required fields drawn right)
    assert accepted > 0


def test_ordinary_events_pass_the_quick_check_and_bad_ones_get_marshmallows_errors():
    assert _QUICK_CHECKS[SCHEMAS["env.requested"]]({"env": "shop-test", "production": "shop", "ttl_seconds": 3600,
                                                     "owner": "ops", "anything": [1]})
    assert _QUICK_CHECKS[SCHEMAS["monitor.alert"]]({"alarm_id": "a1", "current": "alarm", "previous": "ok",
                                                     "reason_data": {"type": "threshold"}})
    assert validate_in("env.requested", {"env": "Shop", "production": "shop"}) == {
        "env": ["must be 2-40 characters of lower-case letters, digits and '-', starting with a letter"]}
    assert validate_in("env.requested", {"env": "shop-test", "production": "shop", "ttl_seconds": "60"}) == {}
    assert "ttl_seconds" in validate_in("env.requested", {"env": "shop-test", "production": "shop", "ttl_seconds": 0})
    assert "current" in validate_in("monitor.alert", {"alarm_id": "a1", "current": "firing"})


def test_a_field_with_several_validators_passes_the_quick_check_only_when_it_passes_them_all():
    # No schema has one today; the quick check must still ask each of them, as marshmallow does
    class WithTwo(Schema):
        name = fields.String(required=True, validate=[validate.Length(max=5), validate.Regexp(r"^[a-z]+$")])

    accepts, schema = _quick_check(WithTwo), WithTwo()
    assert [name for name in ("shop", "abcdef", "Shop", "", "a1", 7, None) if accepts({"name": name})] == ["shop"]
    for name in CANDIDATES:  # never one marshmallow refuses (it may take more: bytes, for one)
        assert not accepts({"name": name}) or schema.validate({"name": name}) == {}, name


def test_schemas_the_quick_check_does_not_understand_are_left_to_marshmallow():
    class WithSchemaHook(Schema):
        name = fields.String()

        @validates_schema
        def check(self, data, **kwargs):
            pass

    class WithEmail(Schema):
        contact = fields.Email()

    class WithContainsOnly(Schema):
        name = fields.String(validate=validate.ContainsOnly("abc"))

    class WithTypedDict(Schema):
        tags = fields.Dict(keys=fields.String(), values=fields.Integer())

    for schema_class in (WithSchemaHook, WithEmail, WithContainsOnly, WithTypedDict):
        assert _quick_check(schema_class) is None, schema_class.__name__


def test_every_text_field_of_every_event_is_bounded():
    """What a person or a system sends is bounded: a length, a name's pattern or a list of choices."""
    bounded = (validate.Length, validate.Regexp, validate.OneOf)
    unbounded = [f"{event_type}.{name}" for event_type, schema_class in sorted(SCHEMAS.items())
                 for name, field in schema_class._declared_fields.items()
                 if isinstance(field, fields.String) and not any(isinstance(v, bounded) for v in field.validators)]
    assert unbounded == []
    assert "ttl_seconds" in validate_in("env.requested", {"env": "shop-test", "production": "shop",
                                                          "ttl_seconds": 10 ** 20})
    assert validate_in("env.requested", {"env": "shop-test", "production": "shop", "owner": "x" * 5_000_000}) == {
        "owner": ["must be at most 128 characters"]}
    assert "production" in validate_in("env.requested", {"env": "shop-test", "production": "../shop"})


def test_a_long_reason_is_shortened_on_the_way_out_so_the_failure_is_still_sent():
    from core.deps import Deps
    reason = "the cloud answered: " + "<html>" * 2000

    failed = Deps().emit("env.failed", step="clone", reason=reason, env="perf-test")

    assert len(failed.data["reason"]) == 4000 and failed.data["reason"].endswith("\u2026")
    assert failed.data["reason"][:3999] == reason[:3999]
    assert validate_in("env.failed", failed.data) == {}
    assert "reason" in validate_in("env.failed", {"step": "clone", "reason": reason})  # refused on the way in
