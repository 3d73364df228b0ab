"""Where a server database is, as whom Doppel reaches it, and the names of the databases it makes there.

A component of kind postgresql or mariadb names its production server and a
`clones` server (by default the same one) where every snapshot and environment
gets a database of its own. Passwords are never in the config file: each server
names the environment variable that holds its password, read when a connection
is made and handed to the engine's tools through their own variables
(PGPASSWORD, MYSQL_PWD), never on a command line or in a message.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Mapping

log = logging.getLogger(__name__)


class DatabaseError(RuntimeError):
    """A server database operation failed; the message names the database (and the table or column), never a
    password."""


@dataclass(frozen=True)
class Server:
    """A database server and the account Doppel uses there."""
    engine: str                    # postgresql | mariadb
    user: str
    host: str = "127.0.0.1"
    port: int | None = None
    socket: str | None = None
    password_env: str | None = None

    @classmethod
    def of(cls, engine: str, spec: Mapping) -> "Server":
        """The server described by a component (its production server) or by its `clones` mapping."""
        return cls(engine=engine, user=spec["user"], host=spec.get("host", "127.0.0.1"), port=spec.get("port"),
                   socket=spec.get("socket"), password_env=spec.get("password_env"))

    def to_dict(self) -> dict:
        return {key: value for key, value in (("engine", self.engine), ("user", self.user), ("host", self.host),
                                              ("port", self.port), ("socket", self.socket),
                                              ("password_env", self.password_env)) if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Server":
        return cls.of(data["engine"], data)

    def password(self) -> str | None:
        """The password from its environment variable; DatabaseError naming the variable when it is not set."""
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise DatabaseError(f"the password of {self.user}@{self.where} is read from the environment variable "
                                f"{self.password_env}, which is not set in this process; set it where Doppel runs")
        return value

    @property
    def where(self) -> str:
        return self.socket or f"{self.host}:{self.port}"

    def tool_env(self) -> dict[str, str]:
        """The environment for the engine's command-line tools: the password in their own variable."""
        env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "MYSQL_PWD")}
        password = self.password()
        if password is not None:
            env["PGPASSWORD" if self.engine == "postgresql" else "MYSQL_PWD"] = password
        return env


_UNSAFE = re.compile(r"[^a-z0-9_]")


def _bounded(name: str, limit: int = 63) -> str:
    """A database name within the engines' limit (63 bytes for PostgreSQL, 64 for MariaDB), still unique."""
    if len(name) <= limit:
        return name
    return f"{name[:limit - 13]}_{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def env_database(env: str, component: str) -> str:
    """The database an environment's copy of `component` lives in: doppel_<env>_<component>."""
    return _bounded(f"doppel_{_UNSAFE.sub('_', env.lower())}_{component}")


def snapshot_database(snapshot_id: str, component: str) -> str:
    """The database a snapshot's copy of `component` lives in until an environment takes it."""
    digest = hashlib.sha256(snapshot_id.encode()).hexdigest()[:16]
    return _bounded(f"doppel_snap_{digest}_{component}")


def scratch_database(purpose: str, token: str) -> str:
    """A database made for a moment (a backup's verification), dropped afterwards."""
    return _bounded(f"doppel_{purpose}_{_UNSAFE.sub('_', token.lower())}")


def stderr_tail(stderr: bytes) -> str:
    """The last lines an engine's tool wrote on stderr, for an error message."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return "; ".join(lines[-3:]) or "no message"


def drop_quietly(drop: Callable[[Server, str], object], server: Server, database: str) -> None:
    """Drop a half-made database with the engine's `drop`; a failure is logged, not raised (an error is already
    on its way)."""
    try:
        drop(server, database)
    except DatabaseError as exc:
        log.warning("could not drop the half-made database %s: %s", database, exc)


class DumpLoader:
    """An engine's client (`command`) loading a dump into `database`, fed the dump's bytes as they come (no file
    in between). The engine's Restoring says when the load failed; the database is dropped then, or on abort."""

    def __init__(self, server: Server, database: str, command: list[str], drop: Callable[[Server, str], object]):
        self.server, self.database, self._drop = server, database, drop
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=self._stderr, env=server.tool_env())

    def write(self, data) -> int:
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            pass  # the client stopped: finish() says why
        return len(data)

    def _ended(self) -> tuple[int, str]:
        """Wait for the client: (its exit code, the tail of its stderr)."""
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self._proc.wait()
        self._stderr.seek(0)
        message = stderr_tail(self._stderr.read())
        self._stderr.close()
        return code, message

    def _failed(self, why: str) -> DatabaseError:
        """The database dropped, and the error to raise."""
        drop_quietly(self._drop, self.server, self.database)
        return DatabaseError(why)

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._stderr.close()
        drop_quietly(self._drop, self.server, self.database)
