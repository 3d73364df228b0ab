"""Keeping secret values out of logs, events, Sentry and chat.

Secrets reach Doppel only through environment variables, so the scrubber knows
them all: it replaces each such value wherever it appears (messages, tags,
headers, breadcrumbs), and masks fields whose names say they hold a secret.
"""
from __future__ import annotations

import hashlib
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


# --- secrets Doppel generated for an environment ---------------------------------------------
# Their values are never stored: only a salted sha256 of each (a "print") and its length, enough to find and
# mask it in what the environment logged. Generated secrets are URL-safe tokens (configure's token_urlsafe),
# so a secret in a line is a window of a run of URL-safe characters.
_URL_SAFE_RUN = re.compile(r"[A-Za-z0-9_-]+")


def secret_print(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\0{value}".encode()).hexdigest()


class GeneratedSecrets:
    """Masks the values behind a set of prints (salt, {(length, print)}) wherever they appear in a line."""

    def __init__(self, salt: str, prints: set[tuple[int, str]]):
        self.salt, self.prints = salt, set(prints)
        self.lengths = sorted({length for length, _ in self.prints}, reverse=True)

    def mask(self, line: str) -> str:
        if not self.prints:
            return line
        found: list[tuple[int, int]] = []
        for run in _URL_SAFE_RUN.finditer(line):
            start, text = run.start(), run.group()
            for length in self.lengths:
                for offset in range(0, len(text) - length + 1):
                    window = text[offset:offset + length]
                    if (length, secret_print(self.salt, window)) in self.prints:
                        found.append((start + offset, start + offset + length))
        merged: list[list[int]] = []
        for begin, end in sorted(found):
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([begin, end])
        for begin, end in reversed(merged):
            line = line[:begin] + MASK + line[end:]
        return line
