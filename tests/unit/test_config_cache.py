"""The validated configuration kept between commands (doppel/config_cache.py): the same bytes give the same
configuration without validating again; any changed byte, of the file or of the code that validates it, is
validated again, so a broken file is always refused."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from doppel import config_cache
from doppel.config import load_config

ROOT = Path(__file__).resolve().parents[2]
VALID = """\
state_dir: state
bus:
  retry: {attempts: 7}
productions:
  shop: {driver: local, path: /srv/shop, base_url: https://shop.example.com, components: [{kind: files, path: app}]}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DOPPEL_CACHE_DIR", str(folder))
    return folder


def test_an_unchanged_file_is_the_configuration_validated_before_and_a_changed_one_is_validated_again(
        tmp_path, cache, monkeypatch):
    file = tmp_path / "doppel.yaml"
    file.write_text(VALID)
    first = load_config(file)
    (kept,) = cache.iterdir()  # the validated configuration was kept, for its owner's eyes only
    assert (kept.stat().st_mode & 0o777, cache.stat().st_mode & 0o777) == (0o600, 0o700)
    validations = []
    real = config_cache.keep
    monkeypatch.setattr(config_cache, "keep", lambda *args: validations.append(args) or real(*args))

    # Loaded again: the same configuration, with nothing validated
    again = load_config(file)
    assert (again.raw, again.path, again.state_dir) == (first.raw, first.path, first.state_dir)
    assert again["bus"]["retry"]["attempts"] == 7 and validations == []

    # A byte changed into an invalid value: refused as ever, naming the key
    file.write_text(VALID.replace("attempts: 7", "attempts: 0"))
    with pytest.raises(ConfigError, match="bus.retry.attempts: Must be greater than or equal to 1"):
        load_config(file)
    # ... and changed back, or to another valid value: validated, and what it says now
    file.write_text(VALID.replace("attempts: 7", "attempts: 8"))
    assert load_config(file)["bus"]["retry"]["attempts"] == 8 and len(validations) == 1


def test_a_change_in_the_code_that_validates_is_another_key(tmp_path, monkeypatch):
    copy = tmp_path / "code"
    shutil.copytree(ROOT / "schemas", copy / "schemas")
    (copy / "doppel").mkdir()
    shutil.copy(ROOT / "doppel" / "config.py", copy / "doppel" / "config.py")
    monkeypatch.setattr(config_cache, "ROOT", copy)
    before = config_cache.key(VALID.encode())
    assert config_cache.key(VALID.encode()) == before
    for changed in (copy / "schemas" / "config.py", copy / "doppel" / "config.py"):
        changed.write_text(changed.read_text() + "\n# changed\n")
        assert config_cache.key(VALID.encode()) != before
        before = config_cache.key(VALID.encode())
    assert config_cache.key(VALID.encode() + b"\n") != before


def test_a_cache_file_that_is_unreadable_or_not_its_own_is_ignored(tmp_path, cache):
    file = tmp_path / "doppel.yaml"
    file.write_text(VALID)
    load_config(file)
    (kept,) = cache.iterdir()
    kept.write_text("{not json")
    assert load_config(file)["bus"]["retry"]["attempts"] == 7
    kept.write_text('{"key": "another", "config": {"bus": {}}}')
    assert load_config(file)["bus"]["retry"]["attempts"] == 7


def test_off_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DOPPEL_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    file = tmp_path / "doppel.yaml"
    file.write_text(VALID)
    assert load_config(file)["bus"]["retry"]["attempts"] == 7
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("value, plain", [
    ({"a": [1, 2.5, None, True, "x"], "b": {}}, True),
    ({"a": (1, 2)}, False),  # JSON would give a list back
    ({1: "a"}, False),  # ... a string key
    ({"a": {1, 2}}, False),
    ({"a": float("nan")}, False),
    ({"a": Path("/x")}, False),
])
def test_only_what_json_gives_back_exactly_is_kept(value, plain):
    assert config_cache._plain(value) is plain


def test_a_command_on_an_unchanged_file_imports_neither_the_yaml_parser_nor_the_validator(tmp_path, cache):
    file = tmp_path / "doppel.yaml"
    file.write_text(VALID)
    probe = ("import sys; from doppel.config import load_config; load_config(sys.argv[1]); "
             "print(sorted(m for m in ('yaml', 'marshmallow', 'schemas.config') if m in sys.modules))")
    environ = {"PYTHONPATH": str(ROOT), "DOPPEL_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    first, second = (subprocess.run([sys.executable, "-c", probe, str(file)], capture_output=True, text=True,
                                    env=environ, check=True).stdout.strip() for _ in range(2))
    assert first == "['marshmallow', 'schemas.config', 'yaml']" and second == "[]"
