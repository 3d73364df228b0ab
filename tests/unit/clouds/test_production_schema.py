"""The productions section: a wrong config is refused with the key that is wrong and what to write."""
from __future__ import annotations

import pytest

from clouds.local.sample import sample_entry
from schemas.production import ProductionConfigError, expected_outputs, load_production, load_productions


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
    ({"driver": "azure"}, "productions.shop.driver: there is no azure driver; Doppel has these: local, openstack, aws"),
    ({"driver": "aws"}, "productions.shop.region: missing; add it, e.g. region: eu-west-1"),
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
    entry = _entry(components=[{"kind": "oracle", "path": "db"}, {"kind": "sqlite", "path": "/abs.db"},
                               {"kind": "config", "path": "conf/app.cfgx"}, {"kind": "files", "path": "../up"}])
    errors = _errors(entry)
    assert "components[0].kind: 'oracle' is not a component kind; use one of files, sqlite, config" in errors
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
    assert "clone.anonymise[1].method: must be one of email, first_name, last_name, full_name, name, phone" in errors
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


def test_a_server_database_names_its_server_and_never_holds_a_password():
    entry = _entry(components=[{"kind": "files", "path": "app"},
                               {"kind": "postgresql", "path": "db", "password": "hunter2"},
                               {"kind": "mariadb", "database": "shop", "user": "shop", "password_env": "s3cret!"}])
    errors = _errors(entry)
    assert "components[1].user: missing; add it, e.g. user: shop" in errors
    assert "components[1].database: missing; add it, e.g. database: shop" in errors
    assert "components[1].password: unknown key; did you mean 'password_env'?" in errors
    assert "components[2].password_env: must be the name of an environment variable" in errors
    assert "hunter2" not in errors


def test_a_server_database_gets_its_name_port_and_clone_server_from_what_it_says():
    production = load_production("shop", _entry(components=[
        {"kind": "files", "path": "app"},
        {"kind": "postgresql", "database": "Shop-Orders", "user": "shop", "password_env": "SHOP_PG"},
        {"kind": "mariadb", "name": "legacy", "database": "old", "user": "u", "port": 3307,
         "clones": {"host": "10.0.0.9", "user": "doppel", "password_env": "DOPPEL_MARIADB"}}], clone={}))
    pg, maria = production["components"][1:]
    assert (pg["name"], pg["port"], pg["host"]) == ("shop_orders", 5432, "127.0.0.1")
    assert pg["clones"] == {"host": "127.0.0.1", "port": 5432, "user": "shop", "password_env": "SHOP_PG"}
    assert maria["clones"] == {"host": "10.0.0.9", "port": 3306, "user": "doppel", "password_env": "DOPPEL_MARIADB"}
    assert "db_shop_orders_url" in expected_outputs(production) and "db_legacy_database" in expected_outputs(production)


def test_a_data_directory_is_for_a_postgresql_server_on_this_host_and_gives_a_password_file():
    entry = _entry(components=[{"kind": "files", "path": "app"},
                               {"kind": "postgresql", "database": "a", "user": "u", "data_directory": "pgdata"},
                               {"kind": "postgresql", "database": "b", "user": "u", "host": "10.0.0.9",
                                "data_directory": "/var/lib/postgresql/15/main"},
                               {"kind": "mariadb", "database": "c", "user": "u", "data_directory": "/var/lib/mysql"}],
                   clone={})
    errors = _errors(entry)
    assert "components[1].data_directory: must be an absolute path" in errors
    assert "components[2].data_directory: the server at 10.0.0.9 is not on this host" in errors
    assert "components[3].data_directory: only a postgresql component" in errors
    production = load_production("shop", _entry(components=[
        {"kind": "files", "path": "app"},
        {"kind": "postgresql", "name": "orders", "database": "o", "user": "u",
         "data_directory": "/var/lib/postgresql/15/main"}], clone={}))
    assert "db_orders_password_file" in expected_outputs(production)
    assert load_production("shop", production) == production


def test_anonymise_methods_say_what_they_need_and_sqlite_takes_only_its_own():
    entry = _entry(components=[{"kind": "files", "path": "app"}, {"kind": "sqlite", "path": "app/shop.db"},
                               {"kind": "postgresql", "name": "orders", "database": "o", "user": "u"}])
    entry["clone"] = {"anonymise": [
        {"database": "orders", "table": "t", "column": "c", "method": "fixed"},
        {"database": "orders", "table": "t", "column": "c", "method": "email", "days": 3},
        {"database": "shop", "table": "t", "column": "c", "method": "date_shift", "days": 3},
        {"database": "orders", "table": "t", "column": "c", "method": "digits", "check": "luhn"}]}
    errors = _errors(entry)
    assert "clone.anonymise[0].value: method fixed needs it; add e.g. value: 'redacted'" in errors
    assert "clone.anonymise[1].days: only method date_shift takes days; remove it" in errors
    assert "clone.anonymise[2].method: SQLite databases take email, name, phone, hash" in errors
    assert "anonymise[3]" not in errors
