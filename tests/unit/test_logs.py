"""The pieces of kept logs that are logic alone: the logs component's checks, masking a generated secret by its
print, and which lines --since keeps."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

import pytest

from clouds.local.sample import sample_entry
from clouds.logs.reading import LineFilter, line_time
from core.secrets import MASK, GeneratedSecrets, secret_print
from schemas.base import ProductionConfigError
from schemas.production import load_production


def entry_with(tmp_path, *logs):
    entry = sample_entry(tmp_path)
    entry["components"] = entry["components"] + list(logs)
    return entry


def test_a_logs_component_moves_to_logs_and_loads_again_to_itself(tmp_path):
    loaded = load_production("shop", entry_with(tmp_path, {"kind": "logs", "paths": ["app/logs/*.log"]}))
    assert loaded["logs"] == [{"kind": "logs", "name": "logs", "paths": ["app/logs/*.log"], "console": False}]
    assert "logs" not in [c["kind"] for c in loaded["components"]]
    assert load_production("shop", loaded) == loaded


@pytest.mark.parametrize("component, says", [
    ({"kind": "logs", "paths": ["/var/log/*.log"]}, "is absolute"),
    ({"kind": "logs", "paths": ["../other/*.log"]}, "leaves the environment's directory"),
    ({"kind": "logs", "console": True}, "the local driver has no server consoles"),
    ({"kind": "logs"}, "collects nothing"),
    ({"kind": "logs", "path": "logs"}, "unknown key"),
])
def test_a_logs_component_the_local_driver_cannot_collect_is_refused_with_what_to_write(tmp_path, component, says):
    with pytest.raises(ProductionConfigError) as refused:
        load_production("shop", entry_with(tmp_path, component))
    assert says in str(refused.value)


def test_a_generated_secret_is_masked_wherever_it_sits_in_a_line_and_nothing_else_is():
    value = secrets.token_urlsafe(24)
    masking = GeneratedSecrets("req-1", {(len(value), secret_print("req-1", value))})
    assert masking.mask(f"password={value} ok") == f"password={MASK} ok"
    assert masking.mask(f"postgres://u:{value}@db/x and again {value}") == f"postgres://u:{MASK}@db/x and again {MASK}"
    assert masking.mask(f"prefix{value}") == f"prefix{MASK}"  # inside a longer word too
    assert masking.mask("nothing secret here, " + "a" * 40) == "nothing secret here, " + "a" * 40
    # Another request's salt does not match: prints are per request
    assert GeneratedSecrets("req-2", masking.prints).mask(value) == value


def test_since_keeps_lines_from_a_time_on_and_undated_lines_go_with_the_line_before():
    since = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
    lines = ["2026-12-02T09:59:59Z old", "  old traceback line", "[2026-12-02 10:00:00,120] new",
             "  new traceback line", "2026-12-02T11:00:00+01:00 the same moment, in Paris"]
    kept = list(LineFilter(since=since).lines("a.log", lines, None, lambda line: line))
    assert kept == ["a.log: [2026-12-02 10:00:00,120] new", "a.log: " + "  new traceback line",
                    "a.log: 2026-12-02T11:00:00+01:00 the same moment, in Paris"]
    assert line_time("no time here") is None
