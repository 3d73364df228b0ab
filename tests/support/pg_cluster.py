"""A PostgreSQL cluster of its own for a test or a bench: initdb into a directory, started on a free port of
127.0.0.1 as the postgres user, stopped and removed on the way out.

A production whose data directory Doppel may copy (clouds.local.pg_thin) must be on
this host; the shared test server on :5432 is not one to copy, so the thin-clone
test and bench/clone_postgres.py make their own here. Needs root (the cluster runs
as `postgres`) and PostgreSQL's server programs (tests/services/postgresql.sh).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clouds.databases.servers import Server


class ClusterUnavailable(Exception):
    """No root, no postgres user, or no initdb: a test skips on it."""


@dataclass
class Cluster:
    data: Path
    port: int
    password: str
    bin_dir: Path

    def server(self, password_env: str) -> Server:
        """Doppel's account on it (`doppel`, a superuser), its password in `password_env`."""
        os.environ[password_env] = self.password
        return Server("postgresql", "doppel", host="127.0.0.1", port=self.port, password_env=password_env)


def _bin_dir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if not found:
        raise ClusterUnavailable("initdb is not installed (tests/services/postgresql.sh installs PostgreSQL)")
    return Path(found).parent


def _as_postgres(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, user="postgres", group="postgres", extra_groups=[], cwd="/", check=True,
                          capture_output=True, text=True, **kwargs)


@contextmanager
def pg_cluster(parent: Path, password: str = "production-secret", settings: str = "") -> Iterator[Cluster]:
    """A running cluster with data directory `parent`/pgdata (the path to it must let `postgres` through)."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("a cluster of its own runs as postgres: needs root")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterUnavailable("there is no postgres user (tests/services/postgresql.sh makes one)") from None
    bin_dir = _bin_dir()
    data = Path(parent) / "pgdata"
    sockets = Path(tempfile.mkdtemp(prefix="doppel-prod-pg-"))
    os.chown(sockets, owner.pw_uid, owner.pw_gid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data.mkdir()
    os.chown(data, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                     "--auth-host=scram-sha-256", "--no-sync")
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sockets}'\n"
                       f"{settings}\n")
        _as_postgres(str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(data / "server.log"), "-w")
        started = True
        _as_postgres(str(bin_dir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", str(sockets), "-p", str(port),
                     "-U", "postgres", "-d", "postgres",
                     input=f"CREATE ROLE doppel LOGIN SUPERUSER PASSWORD '{password}';\n"
                           f"CREATE ROLE shop LOGIN PASSWORD '{password}-shop';\n")
        yield Cluster(data=data, port=port, password=password, bin_dir=bin_dir)
    finally:
        if started:
            _as_postgres(str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w")
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
