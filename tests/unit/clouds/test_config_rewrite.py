"""Config rewriting keeps the file as it was, but for the key; crontabs are disabled, not deleted."""
from __future__ import annotations

import configparser
import json

import pytest
import yaml

from clouds.rewrite import DISABLED_PREFIX, RewriteError, detect_format, disable_crontab_text, read_value, rewrite_text

INI = """; shop settings
[app]
base_url = https://shop.example.com   
# keep debug off
debug=false

[database]
path = /srv/shop/data/shop.db
options = a
    b
timeout = 30
"""


def test_ini_round_trip_keeps_comments_and_layout():
    text = rewrite_text(INI, "ini", "database.path", "/envs/pr-1/data/shop.db")
    text = rewrite_text(text, "ini", "database.options", "c")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["database"]["path"] == "/envs/pr-1/data/shop.db"
    assert parser["database"]["options"] == "c" and parser["database"]["timeout"] == "30"
    assert "; shop settings\n" in text and "# keep debug off\ndebug=false\n" in text
    assert text.replace("/envs/pr-1/data/shop.db", "/srv/shop/data/shop.db").replace(
        "options = c\n", "options = a\n    b\n") == INI


def test_ini_adds_a_missing_key_to_its_section_and_a_missing_section_at_the_end():
    text = rewrite_text(INI, "ini", "app.secret_key", "fresh")
    text = rewrite_text(text, "ini", "mail.enabled", False)
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["app"]["secret_key"] == "fresh" and parser["mail"]["enabled"] == "false"
    assert text.index("secret_key") < text.index("[database]")


def test_ini_keys_match_case_insensitively_as_configparser_reads_them():
    text = rewrite_text("[App]\nBase_URL = x\n", "ini", "App.base_url", "y")
    assert text == "[App]\nBase_URL = y\n"


ENV = """# the shop process
export DATABASE_URL="sqlite:////srv/shop/data/shop.db"
DB_PASSWORD=prod-password  # rotate yearly
GREETING='hello world'
"""


def test_env_round_trip_keeps_comments_quotes_and_export():
    text = rewrite_text(ENV, "env", "DATABASE_URL", "sqlite:////envs/pr-1/shop.db")
    text = rewrite_text(text, "env", "DB_PASSWORD", "n3w-Secret_")
    text = rewrite_text(text, "env", "GREETING", "it's $HOME")
    text = rewrite_text(text, "env", "NEW_KEY", "a b")
    assert text.splitlines() == [
        "# the shop process",
        'export DATABASE_URL="sqlite:////envs/pr-1/shop.db"',
        "DB_PASSWORD=n3w-Secret_  # rotate yearly",
        'GREETING="it\'s \\$HOME"',
        "NEW_KEY='a b'",
    ]
    assert read_value(text, "env", "GREETING") == "it's $HOME"
    assert read_value(text, "env", "DB_PASSWORD") == "n3w-Secret_"
    assert read_value(text, "env", "NEW_KEY") == "a b"


YAML = """# shop settings
site:
  url: https://shop.example.com  # public URL
  name: The Shop
database:
  path: /srv/shop/data/shop.db
  pool: {size: 5, timeout: 30}
empty:
list:
  - a
  - b
tail: 1   # last
"""


def test_yaml_round_trip_keeps_comments_order_and_flow_style():
    text = rewrite_text(YAML, "yaml", "site.url", "http://pr-1.localhost")
    text = rewrite_text(text, "yaml", "database.pool.size", 1)
    text = rewrite_text(text, "yaml", "empty", "now set")
    text = rewrite_text(text, "yaml", "tail", "a: colon")
    loaded = yaml.safe_load(text)
    assert loaded["site"] == {"url": "http://pr-1.localhost", "name": "The Shop"}
    assert loaded["database"]["pool"] == {"size": 1, "timeout": 30}
    assert loaded["empty"] == "now set" and loaded["tail"] == "a: colon" and loaded["list"] == ["a", "b"]
    assert "  url: http://pr-1.localhost  # public URL\n" in text
    assert text.startswith("# shop settings\n") and '# last' in text


def test_yaml_adds_missing_nested_keys_in_block_style():
    text = rewrite_text(YAML, "yaml", "database.credentials.password", "s3cret")
    text = rewrite_text(text, "yaml", "mail.enabled", False)
    loaded = yaml.safe_load(text)
    assert loaded["database"]["credentials"] == {"password": "s3cret"}
    assert loaded["database"]["path"] == "/srv/shop/data/shop.db"
    assert loaded["mail"] == {"enabled": False} and loaded["tail"] == 1
    assert text.startswith(YAML.split("empty:")[0].split("  pool")[0])


def test_yaml_replaces_a_block_scalar_keeping_the_next_key():
    text = "a:\n  b:\n    c: |\n      line one\n      line two\n  d: 1\n"
    assert rewrite_text(text, "yaml", "a.b.c", "new") == "a:\n  b:\n    c: new\n  d: 1\n"


def test_yaml_refuses_to_overwrite_a_mapping_with_one_value():
    with pytest.raises(RewriteError, match="database holds a mapping"):
        rewrite_text(YAML, "yaml", "database", "x")


def test_json_round_trip_keeps_order_and_indentation():
    original = json.dumps({"site": {"url": "https://shop.example.com", "name": "Shop"}, "mail": {"on": True}},
                          indent=4) + "\n"
    text = rewrite_text(original, "json", "site.url", "http://pr-1.localhost")
    text = rewrite_text(text, "json", "mail.on", False)
    text = rewrite_text(text, "json", "database.path", "/envs/pr-1/shop.db")
    assert json.loads(text) == {"site": {"url": "http://pr-1.localhost", "name": "Shop"}, "mail": {"on": False},
                                "database": {"path": "/envs/pr-1/shop.db"}}
    assert text.startswith('{\n    "site": {\n        "url"') and text.endswith("}\n")


PHP = """<?php
// database settings
define('DB_PATH', '/srv/shop/data/shop.db');
define("BASE_URL", "https://shop.example.com"); # public
define('DB_PASSWORD', getenv('DB_PASSWORD'));
/* mail */
define('MAIL_ON', true);
?>
"""


def test_php_define_round_trip_keeps_comments():
    text = rewrite_text(PHP, "php", "DB_PATH", "/envs/pr-1/it's.db")
    text = rewrite_text(text, "php", "BASE_URL", "http://pr-1.localhost")
    text = rewrite_text(text, "php", "DB_PASSWORD", "fresh")
    text = rewrite_text(text, "php", "MAIL_ON", False)
    text = rewrite_text(text, "php", "APP_ENV", "pr-1")
    assert read_value(text, "php", "DB_PATH") == "/envs/pr-1/it's.db"
    assert read_value(text, "php", "BASE_URL") == "http://pr-1.localhost"
    assert read_value(text, "php", "DB_PASSWORD") == "fresh"
    assert read_value(text, "php", "MAIL_ON") is False
    assert "define('DB_PATH', '/envs/pr-1/it\\'s.db');" in text
    assert "// database settings" in text and "# public" in text and "/* mail */" in text
    assert text.rstrip().endswith("define('APP_ENV', 'pr-1');\n?>")


def test_values_with_line_breaks_are_refused_where_a_line_cannot_hold_them():
    with pytest.raises(RewriteError, match="line break"):
        rewrite_text(INI, "ini", "app.base_url", "a\nb")


@pytest.mark.parametrize("name, fmt", [(".env", "env"), (".env.local", "env"), ("app.ini", "ini"),
                                       ("x.yml", "yaml"), ("wp-config.php", "php"), ("s.json", "json"),
                                       ("notes.txt", None)])
def test_format_is_told_by_the_file_name(name, fmt):
    assert detect_format(name) == fmt


def test_crontab_active_lines_are_commented_out_once():
    crontab = "# jobs\nMAILTO=ops@example.net\n\n*/5 * * * * run a\n  0 3 * * * run b\n"
    disabled, count = disable_crontab_text(crontab)
    assert count == 3
    assert disabled.splitlines() == ["# jobs", DISABLED_PREFIX + "MAILTO=ops@example.net", "",
                                     DISABLED_PREFIX + "*/5 * * * * run a", DISABLED_PREFIX + "  0 3 * * * run b"]
    assert disable_crontab_text(disabled) == (disabled, 0)


def test_ini_dotted_option_names_before_any_section_are_kept_whole():
    php_ini = "; php settings\nsession.save_path = /srv/shop/sessions\n"
    assert rewrite_text(php_ini, "ini", "session.save_path", "/envs/pr-1/sessions") == \
        "; php settings\nsession.save_path = /envs/pr-1/sessions\n"
    assert rewrite_text("[Session]\nsession.save_path = /tmp\n", "ini", "Session.session.save_path", "/e") == \
        "[Session]\nsession.save_path = /e\n"
