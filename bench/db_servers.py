"""What the database benches share: the test servers, the run's header, and dropping every database they made.

The servers are the ones tests/services/postgresql.sh and mariadb.sh provide (user
`doppel` on 127.0.0.1, the password in DOPPEL_TEST_PG_PASSWORD /
DOPPEL_TEST_MARIADB_PASSWORD, default doppel-test), reached the way a production's
config reaches them: a `Server` whose password is read from an environment variable.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clouds.databases.servers import Server  # noqa: E402

PG_PASSWORD_ENV = "DOPPEL_TEST_PG_PASSWORD"
MARIADB_PASSWORD_ENV = "DOPPEL_TEST_MARIADB_PASSWORD"


def pg_server() -> Server:
    os.environ.setdefault(PG_PASSWORD_ENV, "doppel-test")
    return Server("postgresql", "doppel", host="127.0.0.1", port=5432, password_env=PG_PASSWORD_ENV)


def mariadb_server() -> Server:
    os.environ.setdefault(MARIADB_PASSWORD_ENV, "doppel-test")
    return Server("mariadb", "doppel", host="127.0.0.1", port=3306, password_env=MARIADB_PASSWORD_ENV)


def component(server: Server, name: str, database: str) -> dict:
    """A production's server-database component, loaded by the config schema as `doppel.yaml` would be."""
    from schemas.production import ComponentField
    return ComponentField().deserialize({"kind": server.engine, "name": name, "database": database,
                                         "host": server.host, "port": server.port, "user": server.user,
                                         "password_env": server.password_env})


def header() -> str:
    """The command, the commit (with -dirty when the tree has changes) and the machine's load, for RESULTS.md."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return (f"command: {shlex.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}\n"
            f"commit: {commit} ({git('rev-parse', '--abbrev-ref', 'HEAD')}); {load()}; {os.cpu_count()} CPU(s)")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


class MadeDatabases:
    """Every database a bench made, dropped when the bench ends: normally, on an error, on Ctrl-C or on SIGTERM.

    A database is recorded before it is made, so one that was half made is dropped too; dropping one that is not
    there is a no-op. Use as a context manager around the whole run.
    """

    def __init__(self) -> None:
        self._made: list[tuple[str, Callable[[str], bool]]] = []

    def add(self, database: str, drop: Callable[[str], bool]) -> str:
        """Drop `database` at the end with `drop` (which says whether it was there)."""
        if all(name != database for name, _ in self._made):
            self._made.append((database, drop))
        return database

    def forget(self, database: str) -> None:
        """Leave `database` in place at the end (a production kept for the next run)."""
        self._made = [(name, drop) for name, drop in self._made if name != database]

    def drop(self, database: str) -> None:
        for name, drop in self._made:
            if name == database:
                drop(name)
        self.forget(database)

    def __enter__(self) -> "MadeDatabases":
        self._previous = signal.signal(signal.SIGTERM, _terminate)
        return self

    def __exit__(self, *exc) -> None:
        # Ctrl-C while dropping would leave the rest: the drops finish first
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            dropped = []
            for name, drop in reversed(self._made):
                try:
                    if drop(name):
                        dropped.append(name)
                except Exception as error:  # noqa: BLE001 - one that fails must not keep the others
                    print(f"could not drop database {name}: {error}; drop it by hand", file=sys.stderr)
            if dropped:
                print(f"dropped {len(dropped)} database(s) this run made and had not dropped yet: "
                      f"{', '.join(dropped)}", file=sys.stderr)
            self._made = []
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, self._previous)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
