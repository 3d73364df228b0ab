"""Keeping secret values out of logs, events, Sentry and chat.

Secrets reach Doppel through environment variables, and the credentials Doppel
makes for each environment (clone.secrets) are made in the process that configures
it, which remembers them: the scrubber knows them all, replaces each such value
wherever it appears (messages, tags, headers, breadcrumbs, event data), masks the
password of any URL (scheme://user:password@host), and masks fields whose names say
they hold a secret.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import deque
from urllib.parse import urlsplit

MASK = "[redacted]"
# A chat webhook's URL, and a slash command's reply address, let whoever holds them post: credentials too.
_SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api_?key|private_?key|credential|dsn|auth|_key$|webhook|"
                          r"reply_to)", re.I)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words
# The password of a URL: after "scheme://user:", up to the "@" that ends the user part.
_URL_PASSWORD = re.compile(r"(?<=://)([^\s/:@]*):([^\s/@]+)@")
_REMEMBERED_MAX = 10_000  # made credentials kept to mask: a worker's last few thousand environments
_remembered: deque[str] = deque(maxlen=_REMEMBERED_MAX)
_remembered_lock = threading.Lock()


def remember(values) -> None:
    """Mask these values too, from now on in this process (credentials Doppel made, e.g. an environment's)."""
    with _remembered_lock:
        _remembered.extend(v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LEN)


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
    with _remembered_lock:
        values.update(_remembered)
    return {v for v in values if len(v) >= _MIN_SECRET_LEN}


def scrub(node, secrets: set[str], key: str = "", *, by_name: bool = True):
    """A copy of `node` with secret values and URL passwords replaced, and (`by_name`) secret-named fields
    masked."""
    if isinstance(node, dict):
        return {k: (MASK if by_name and isinstance(k, str) and _SECRET_NAME.search(k)
                    and isinstance(v, (str, int, float)) and not isinstance(v, bool)
                    else scrub(v, secrets, k, by_name=by_name))
                for k, v in node.items()}
    if isinstance(node, list):
        return [scrub(v, secrets, key, by_name=by_name) for v in node]
    if isinstance(node, tuple):
        return tuple(scrub(v, secrets, key, by_name=by_name) for v in node)
    if isinstance(node, str):
        if _PRIVATE_KEY.search(node):
            return MASK  # a private key (a server's host key through user data) whatever holds it
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in node:
                node = node.replace(secret, MASK)
        if "://" in node:
            node = _URL_PASSWORD.sub(_mask_url_password, node)
        return node
    return node


def _mask_url_password(match: re.Match) -> str:
    if match.group(2) == MASK or set(match.group(2)) == {"*"}:  # masked already (`doppel config show`'s ****)
        return match.group(0)
    return f"{match.group(1)}:{MASK}@"


def masked(data):
    """Event data (or any JSON-like value) as it may be shown: secrets masked as by `scrub`."""
    return scrub(data, secret_values())


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
