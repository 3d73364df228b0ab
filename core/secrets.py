"""Keeping secret values out of logs, events, Sentry and chat.

Secrets reach Doppel only through environment variables, so the scrubber knows
them all: it replaces each such value wherever it appears (messages, tags,
headers, breadcrumbs), and masks fields whose names say they hold a secret.
"""
from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlsplit

MASK = "[redacted]"
_SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api_?key|private_?key|credential|dsn|auth|_key$)", re.I)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def secret_values(environ=os.environ) -> set[str]:
    """Values of environment variables that hold secrets, and passwords inside URLs."""
    values = set()
    for name, value in environ.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) or name in ("DOPPEL_AMQP_URL", "DOPPEL_DB_URL"):
            values.add(value)
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                values.add(password)
    return {v for v in values if len(v) >= _MIN_SECRET_LEN}


def scrub(node, secrets: set[str], key: str = ""):
    """A copy of `node` with secret values replaced and secret-named fields masked."""
    if isinstance(node, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_NAME.search(k) and isinstance(v, (str, int, float))
                    and not isinstance(v, bool) else scrub(v, secrets, k))
                for k, v in node.items()}
    if isinstance(node, list):
        return [scrub(v, secrets, key) for v in node]
    if isinstance(node, tuple):
        return tuple(scrub(v, secrets, key) for v in node)
    if isinstance(node, str):
        if _PRIVATE_KEY.search(node):
            return MASK  # a private key (a server's host key through user data) whatever holds it
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in node:
                node = node.replace(secret, MASK)
        return node
    return node


def redact(text: str) -> str:
    """`text` with every known secret value masked: for error texts, headers, log lines, chat."""
    return scrub(text, secret_values())


class RedactingFilter(logging.Filter):
    """Masks secret values in every log record that passes through the handler it is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        if secrets:
            record.msg = scrub(record.getMessage(), secrets)
            record.args = ()
        return True
