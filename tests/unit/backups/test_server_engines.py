"""The database engines are loaded only for a server database: a backup of files and SQLite starts without them."""
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from clouds.backups.server_capture import ServerCaptureError, add_server_database

ROOT = Path(__file__).resolve().parents[3]


def test_backing_up_or_restoring_files_loads_neither_psycopg_nor_pymysql():
    # Break caught: clouds.databases.engines imported at the top of a backups module again (0.13 s more at
    # the start of every `doppel backup` and restore)
    probe = ("import sys; from clouds.backups import find_backup, restore, verify, write_backup; "
             "from clouds.stores import make_store; "
             "print(sorted(m for m in ('psycopg', 'pymysql', 'clouds.databases.engines') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_database_kind_without_an_engine_is_refused_by_name():
    with tarfile.open(fileobj=io.BytesIO(), mode="w") as tar, \
            pytest.raises(ServerCaptureError, match="database crm: backups of oracle databases are not built yet"):
        add_server_database(tar, {"kind": "oracle", "name": "crm", "database": "crm",
                                  "server": {"engine": "oracle", "host": "127.0.0.1", "port": 1521}})
