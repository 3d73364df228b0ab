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
import os
import re
from dataclasses import dataclass
from typing import Mapping


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
