"""The refusal of a request naming a production doppel.yaml does not describe: it lists the ones it does (the
logic of functions/snapshot.py's first check; the flow tests run the chain with one production only)."""
from types import SimpleNamespace

import pytest

from core.errors import PermanentError
from functions import snapshot
from schemas.envelope import Event


@pytest.mark.parametrize("productions, named", [({}, "none"), ({"shop": {}, "blog": {}}, "blog, shop")])
def test_an_unknown_production_is_refused_naming_the_ones_doppel_yaml_describes(productions, named):
    # Breaks caught: the productions listed without their separator, or "none" said otherwise
    request = Event(type="env.requested", source="test", data={"env": "perf-test", "production": "nosuch"})

    with pytest.raises(PermanentError) as refused:
        snapshot.handle(request, SimpleNamespace(config={"productions": productions}))

    assert str(refused.value) == f"production 'nosuch' is not described in doppel.yaml (productions: {named})"
