"""A small environment on disk for backup tests (files, a link, SQLite in WAL and rollback modes), and checksums."""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from core.cloud import BackupSource

DATABASES = ("data/app.db", "data/audit.db")


def make_environment(root: Path, rows: int = 500, blob_bytes: int = 256 * 1024) -> BackupSource:
    """An environment as an ops team has them: app files, a log to exclude, two live SQLite databases."""
    (root / "app" / "static").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "logs").mkdir()
    (root / "app" / "index.php").write_text("<?php echo 'shop';\n")
    (root / "app" / "static" / "logo.bin").write_bytes(os.urandom(blob_bytes))
    (root / "app" / "config.ini").write_text("[db]\npath = ../data/app.db\n")
    (root / "app" / "current").symlink_to("static")
    (root / "logs" / "access.log").write_text("GET /\n" * 100)
    with sqlite3.connect(root / "data" / "app.db") as db:
        db.execute("PRAGMA journal_mode=wal")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
        db.executemany("INSERT INTO orders (customer, total) VALUES (?, ?)",
                       [(f"customer-{i}", i * 1.5) for i in range(rows)])
    with sqlite3.connect(root / "data" / "audit.db") as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
        db.executemany("INSERT INTO events (what) VALUES (?)", [(f"event {i}",) for i in range(rows)])
    return BackupSource(root=root, databases=DATABASES, exclude=("logs", "logs/*"))


def file_checksums(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every regular file and the target of every link, by relative path."""
    found = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if any(name == s or name.startswith((s + "-", s + "/")) for s in skip):
            continue
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def table_checksums(database: Path) -> dict[str, str]:
    """sha256 of every table's rows in primary-key order: equal rows, equal sums."""
    db = sqlite3.connect(database)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: hashlib.sha256(repr(db.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall()).encode())
                .hexdigest() for t in tables}
    finally:
        db.close()
