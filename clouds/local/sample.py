"""A small made-up production to clone: what `doppel demo` and the tests start from.

An application directory, a SQLite database of invented customers (names, emails,
phones) with their orders and an audit log fed by a trigger, config files in ini,
.env and JSON that point at that database and at the production URL, and a crontab
with two jobs. Nothing in it is real; the production secrets are random per call.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import sqlite3
from pathlib import Path

PRODUCTION_URL = "https://shop.example.com"

_FIRST = ("Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Keiko", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara")
_LAST = ("Smith", "Garcia", "Okafor", "Novak", "Jensen", "Rossi", "Tanaka", "Dubois", "Kowalski", "Silva",
         "Murphy", "Haddad", "Larsen", "Moreau", "Patel", "Schmidt", "Ivanova", "Costa", "Nguyen", "Brown")


def make_sample_production(path: Path, rows: int = 50) -> dict:
    """Write the sample production into `path` (made if missing); returns its `productions:` entry.

    Use it as `{"productions": {"shop": make_sample_production(Path("/tmp/shop"))}}`.
    """
    root = Path(path).resolve()
    root.mkdir(parents=True, exist_ok=True)
    database = root / "data" / "shop.db"
    _write_app(root / "app")
    _write_database(database, rows)
    prod_secrets = {"db_password": secrets.token_urlsafe(18), "app_secret": secrets.token_urlsafe(18)}
    _write_configs(root, database, prod_secrets)
    _write(root / "crontab", "# shop's scheduled jobs\nMAILTO=ops@example.net\n"
                             f"*/5 * * * * cd {root}/app && python app.py send-emails\n"
                             f"0 3 * * * cd {root}/app && python app.py nightly-report\n")
    return sample_entry(root)


def sample_entry(root: Path) -> dict:
    """The config entry for a sample production at `root`, with a clone policy that makes copies safe."""
    return {
        "driver": "local",
        "path": str(root),
        "base_url": PRODUCTION_URL,
        "domain": "localhost",  # clones answer at http://<env>.localhost
        "components": [
            {"kind": "files", "path": "app", "exclude": ["*.log"]},
            {"kind": "sqlite", "path": "data/shop.db", "name": "main"},
            {"kind": "config", "path": "config/app.ini"},
            {"kind": "config", "path": ".env"},
            {"kind": "config", "path": "config/settings.json"},
            {"kind": "crontab", "path": "crontab"},
        ],
        "clone": {
            "rewrite": [
                {"file": "config/app.ini", "key": "database.path", "value": "{outputs.db_main_path}"},
                {"file": "config/app.ini", "key": "app.base_url", "value": "{outputs.base_url}"},
                {"file": "config/app.ini", "key": "app.secret_key", "value": "{secrets.app_secret}"},
                {"file": ".env", "key": "DATABASE_URL", "value": "{outputs.db_main_url}"},
                {"file": ".env", "key": "DB_PASSWORD", "value": "{secrets.db_password}"},
                {"file": ".env", "key": "APP_SECRET", "value": "{secrets.app_secret}"},
                {"file": ".env", "key": "BASE_URL", "value": "{outputs.base_url}"},
                {"file": "config/settings.json", "key": "database.path", "value": "{outputs.db_main_path}"},
                {"file": "config/settings.json", "key": "site.url", "value": "{outputs.base_url}"},
                {"file": "config/settings.json", "key": "mail.enabled", "value": False},
            ],
            "secrets": ["db_password", "app_secret"],
            "crons": "disable",
            "anonymise": [
                {"database": "main", "table": "customers", "column": "email", "method": "email"},
                {"database": "main", "table": "customers", "column": "name", "method": "name"},
                {"database": "main", "table": "customers", "column": "phone", "method": "phone"},
                {"database": "main", "table": "audit_log", "method": "truncate"},
            ],
        },
    }


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _write_app(app: Path) -> None:
    _write(app / "VERSION", "1.4.2\n")
    _write(app / "index.html", "<!doctype html><title>Shop</title><h1>The Shop</h1>\n")
    _write(app / "static" / "style.css", "body { font-family: sans-serif; }\n")
    _write(app / "app.py", '"""The shop (a stand-in)."""\nimport sys\nprint("shop", *sys.argv[1:])\n', 0o755)


def _write_database(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    pick = random.Random(1234)
    connection = sqlite3.connect(path)
    with connection:
        connection.executescript("""
            PRAGMA journal_mode = WAL;
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
                                    phone TEXT, created_at TEXT NOT NULL);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                                 total_cents INTEGER NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE audit_log (id INTEGER PRIMARY KEY, customer_email TEXT, action TEXT NOT NULL,
                                    at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
            CREATE TRIGGER customers_email_audit AFTER UPDATE OF email ON customers BEGIN
                INSERT INTO audit_log (customer_email, action) VALUES (OLD.email, 'email changed');
            END;
        """)
        for number in range(1, rows + 1):
            first, last = pick.choice(_FIRST), pick.choice(_LAST)
            connection.execute(
                "INSERT INTO customers (id, name, email, phone, created_at) VALUES (?, ?, ?, ?, ?)",
                (number, f"{first} {last}", f"{first}.{last}.{number}@example.net".lower(),
                 f"+44 7700 {900000 + number:06d}", f"2024-01-{number % 28 + 1:02d}"))
            connection.execute("INSERT INTO audit_log (customer_email, action) VALUES (?, 'signed up')",
                               (f"{first}.{last}.{number}@example.net".lower(),))
            for _ in range(pick.randint(0, 3)):
                connection.execute("INSERT INTO orders (customer_id, total_cents, created_at) VALUES (?, ?, ?)",
                                   (number, pick.randint(500, 50000), "2024-02-01"))
    connection.close()


def _write_configs(root: Path, database: Path, prod_secrets: dict) -> None:
    _write(root / "config" / "app.ini",
           "; The shop's settings. Production values: every copy gets its own.\n"
           "[app]\n"
           f"base_url = {PRODUCTION_URL}\n"
           f"secret_key = {prod_secrets['app_secret']}\n"
           "; debug stays off in production\n"
           "debug = false\n"
           "\n"
           "[database]\n"
           "# the one database\n"
           f"path = {database}\n"
           "timeout = 30\n", 0o640)
    _write(root / ".env",
           "# environment of the shop process\n"
           f"DATABASE_URL=sqlite:///{database}\n"
           f"DB_PASSWORD={prod_secrets['db_password']}\n"
           f"APP_SECRET={prod_secrets['app_secret']}  # rotate yearly\n"
           f"BASE_URL={PRODUCTION_URL}\n"
           "LOG_LEVEL=info\n", 0o600)
    settings = {"site": {"name": "The Shop", "url": PRODUCTION_URL}, "database": {"path": str(database)},
                "mail": {"enabled": True, "from": "shop@example.net"}}
    _write(root / "config" / "settings.json", json.dumps(settings, indent=2) + "\n")
