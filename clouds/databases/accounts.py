"""An environment's own account on its own database (PostgreSQL): made after the restore, with the password
generated for that environment, never production's; removed with the database.

The password never crosses the wire in clear: the role is given a SCRAM-SHA-256 verifier computed here
(what PostgreSQL itself stores), so a server that logs its statements logs no password. Doppel's account
needs CREATEROLE on the env's server to do this; a role that is Doppel's own is refused.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from psycopg import sql

from clouds.databases import postgresql
from clouds.databases.servers import DatabaseError, Server

ITERATIONS = 4096  # PostgreSQL's own default for scram_iterations


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677)."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()
    return f"SCRAM-SHA-256${ITERATIONS}:{b64(salt)}${b64(stored)}:{b64(server)}"


def _check(server: Server, user: str) -> None:
    if server.engine != "postgresql":
        raise DatabaseError(f"an account of its own for an env's database is made on PostgreSQL only, not on "
                            f"{server.engine}; leave out `owner:` for it")
    if user == server.user:
        raise DatabaseError(f"the env's account {user} would be Doppel's own ({server.user}@{server.where}); give "
                            "`owner.user` a name of the env's own")


def give(server: Server, database: str, user: str, password: str) -> None:
    """Make (or set the password of) login role `user`, and give it every right on `database` and its objects."""
    _check(server, user)
    role, db = sql.Identifier(user), sql.Identifier(database)
    try:
        with postgresql.connect(server, "postgres", autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = sql.SQL("ALTER ROLE" if found else "CREATE ROLE")
            conn.execute(sql.SQL("{} {} LOGIN PASSWORD {}").format(verb, role, sql.Literal(scram_verifier(password))))
            conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(db, role))
        with postgresql.connect(server, database, autocommit=True) as conn:
            schemas = [row[0] for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> "
                "'information_schema'")]
            for schema in map(sql.Identifier, schemas):
                for statement in ("GRANT USAGE, CREATE ON SCHEMA {s} TO {r}", "GRANT ALL ON ALL TABLES IN SCHEMA "
                                  "{s} TO {r}", "GRANT ALL ON ALL SEQUENCES IN SCHEMA {s} TO {r}"):
                    conn.execute(sql.SQL(statement).format(s=schema, r=role))
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - psycopg's errors name no password (a verifier was sent)
        raise DatabaseError(f"cannot give the env its account {user} on {database} at {server.where}: "
                            f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None


def remove(server: Server, user: str) -> None:
    """Drop login role `user` (its database is dropped first, so it holds nothing); no error when it is gone."""
    _check(server, user)
    try:
        with postgresql.connect(server, "postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DatabaseError(f"cannot drop the env's account {user} at {server.where}: "
                            f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
