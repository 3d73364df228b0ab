"""The productions section: a wrong config is refused with the key that is wrong and what to write."""
from __future__ import annotations

import pytest

from clouds.local.sample import sample_entry
from schemas.production import ProductionConfigError, load_production, load_productions


def _entry(**changes):
    entry = sample_entry(__import__("pathlib").Path("/srv/shop"))
    entry.update(changes)
    return entry


def _errors(entry) -> str:
    with pytest.raises(ProductionConfigError) as failure:
        load_production("shop", entry)
    return "\n".join(failure.value.lines)


def test_the_sample_production_is_valid_and_loading_is_idempotent():
    loaded = load_production("shop", _entry())
    assert load_production("shop", loaded) == loaded
    assert {rule["format"] for rule in loaded["clone"]["rewrite"]} == {"ini", "env", "json"}
    assert loaded["clone"]["isolate"] is True and loaded["clone"]["crons"] == "disable"


@pytest.mark.parametrize("change, expected", [
    ({"path": "srv/shop"}, "productions.shop.path: 'srv/shop' must be absolute, e.g. /srv/shop"),
    ({"path": None}, "productions.shop.path"),
    ({"base_url": "shop.example.com"}, "productions.shop.base_url: must be a URL such as https://"),
    ({"driver": "azure"}, "productions.shop.driver: there is no azure driver; Doppel has these: local, openstack"),
    ({"driver": "aws"}, "productions.shop.driver: there is no aws driver; Doppel has these: local, openstack"),
    ({"domain": "Not A Domain"}, "productions.shop.domain: 'Not A Domain' is not a DNS domain; write e.g."),
    ({"components": []}, "productions.shop.components: list at least one component"),
    ({"compnents": []}, "productions.shop.compnents: unknown key; did you mean 'components'?"),
])
def test_a_wrong_production_key_is_named_with_the_fix(change, expected):
    entry = _entry()
    for key, value in change.items():
        if value is None:
            entry.pop(key)
        else:
            entry[key] = value
    assert expected in _errors(entry)


def test_component_errors_name_the_component_by_index():
    entry = _entry(components=[{"kind": "mariadb", "path": "db"}, {"kind": "sqlite", "path": "/abs.db"},
                               {"kind": "config", "path": "conf/app.cfgx"}, {"kind": "files", "path": "../up"}])
    errors = _errors(entry)
    assert "components[0].kind: 'mariadb' is not a component kind; use one of files, sqlite, config" in errors
    assert "components[1].path: '/abs.db' is absolute; write it relative" in errors
    assert "components[2].format: cannot tell the format of conf/app.cfgx from its name; add format:" in errors
    assert "components[3].path: '../up' leaves the production directory" in errors


def test_clone_policy_errors_name_the_rule_and_the_fix():
    entry = _entry()
    entry["clone"] = {
        "rewrite": [{"file": "nowhere.ini", "key": "a.b", "value": "{outputs.db_mian_path}"},
                    {"file": "config/app.ini", "key": "a.b", "value": "{outputs.base_url"}],
        "anonymise": [{"database": "shop", "table": "customers", "column": "email", "method": "email"},
                      {"database": "main", "table": "customers", "method": "scramble"}],
    }
    errors = _errors(entry)
    assert "clone.rewrite[1].value: stray '{'" in errors
    assert "clone.anonymise[1].method: must be one of email, name, phone, hash, null, truncate" in errors
    entry["clone"]["rewrite"].pop(1)
    entry["clone"]["anonymise"].pop(1)
    errors = _errors(entry)
    assert ("clone.rewrite[0].file: nowhere.ini is in no component, so the clone will not have it; add "
            "{kind: config, path: nowhere.ini} to components") in errors
    assert "clone.rewrite[0].value: outputs.db_mian_path is not an output" in errors
    assert "did you mean outputs.db_main_path?" in errors
    assert "clone.anonymise[0].database: 'shop' is not a database of this production; its databases: main" in errors


def test_a_secret_used_but_not_declared_is_named():
    entry = _entry()
    entry["clone"] = dict(entry["clone"], secrets=["db_password"])
    assert ("clone.rewrite[2].value: uses secrets.app_secret, which is not declared; add app_secret to "
            "clone.secrets") in _errors(entry)


def test_production_names_are_checked():
    with pytest.raises(ProductionConfigError, match=r"productions\.Shop\.key: must be 2-40 characters"):
        load_productions({"Shop": _entry()})
