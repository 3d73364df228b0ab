"""What a person reads when a command fails for a reason outside the command's own checks.

A damaged state database, a directory that cannot be written, a URL that is not
one: each becomes one line that says what was wrong and what to do, and an exit
code (1 failed, 2 a setting to correct). Anything else is a bug: one line too,
and `--debug` shows the traceback for the report.
"""
from __future__ import annotations

import errno
import os

USAGE, FAILED = 2, 1

DB_HINT = ("point DOPPEL_DB_URL at a working database, or move the damaged file aside (a new one is made "
           "empty) and restore the state from a backup")


def explain(exc: BaseException) -> tuple[str, int]:
    """(message, exit code) for an exception no command turned into a CommandError."""
    module = type(exc).__module__ or ""
    if module.startswith("sqlalchemy"):
        return _database(exc)
    if isinstance(exc, OSError):
        return _filesystem(exc)
    if type(exc).__name__ in ("BrokerUnavailable", "PublishError"):
        from core.secrets import redact
        return (f"RabbitMQ did not answer: {redact(str(exc))[:300]}; is it running, and is DOPPEL_AMQP_URL right? "
                "Try again once it answers", FAILED)
    from core.secrets import redact
    return (f"unexpected error: {type(exc).__name__}: {redact(str(exc))[:300]}; this is a bug in Doppel: "
            "run the command again with --debug and report what it prints", FAILED)


def _database(exc: BaseException) -> tuple[str, int]:
    from sqlalchemy import exc as sa

    from core.db import redact_url
    url = redact_url(os.environ.get("DOPPEL_DB_URL") or "") if os.environ.get("DOPPEL_DB_URL") else \
        "the state database"
    orig = getattr(exc, "orig", None)
    reason = str(orig if orig is not None else exc).splitlines()[0][:200]
    if isinstance(exc, sa.ArgumentError):
        return (f"DOPPEL_DB_URL is not a database URL ({reason}); write e.g. sqlite:////var/lib/doppel/doppel.db "
                "or postgresql://doppel@db.example/doppel, or unset it for the SQLite file under state_dir", USAGE)
    if isinstance(exc, sa.NoSuchModuleError):
        return f"DOPPEL_DB_URL names a database Doppel has no driver for ({reason})", USAGE
    if isinstance(exc, sa.OperationalError) and ("unable to open" in reason or "readonly" in reason):
        return (f"cannot open or write {url}: {reason}; check that its directory exists and is writable "
                "(state_dir in doppel.yaml, or DOPPEL_DB_URL)", FAILED)
    if isinstance(exc, sa.OperationalError):
        return f"cannot use {url}: {reason}; is the database running and reachable?", FAILED
    if isinstance(exc, sa.DatabaseError):
        return f"{url} cannot be read: {reason}; it is damaged or is not Doppel's: {DB_HINT}", FAILED
    return f"{url}: {type(exc).__name__}: {reason}", FAILED


def _filesystem(exc: OSError) -> tuple[str, int]:
    where = exc.filename or "a file"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: {reason}; run as a user that may write there, or choose another directory", FAILED
    if exc.errno in (errno.ENOTDIR, errno.ENOENT):
        return f"{where}: {reason}; a directory on that path is missing or is a file", FAILED
    if exc.errno == errno.ENOSPC:
        return f"{where}: {reason}; free some space and try again", FAILED
    return f"{where}: {reason}", FAILED
