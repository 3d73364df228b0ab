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
_remembered_version = 0  # bumped by remember(): secret_values() rebuilds its set only after a change
_WORD = re.compile(r"[A-Za-z0-9_-]+")  # what token_urlsafe makes, and what ends where such a token ends


class SecretSet(frozenset):
    """The secret values to mask, ready for a fast scrub: `others` are looked for as substrings (longest first),
    `words` (credentials Doppel made, URL-safe tokens) as whole words of a text, in one pass whatever their
    number. A worker remembers thousands of credentials; looking for each in every log line would cost a
    scan of the line per credential."""

    words: frozenset
    others: tuple

    def __new__(cls, values, words=frozenset()):
        made = super().__new__(cls, values)
        made.words = frozenset(w for w in words if w in made)
        made.others = tuple(sorted((v for v in made if v not in made.words), key=len, reverse=True))
        return made


_cache: tuple | None = None  # (environment secrets, remembered version, SecretSet)


def remember(values) -> None:
    """Mask these values too, from now on in this process (credentials Doppel made, e.g. an environment's)."""
    global _remembered_version
    with _remembered_lock:
        _remembered.extend(v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LEN)
        _remembered_version += 1


def secret_values(environ=os.environ) -> SecretSet:
    """Values of environment variables that hold secrets, passwords inside URLs, and the credentials remembered."""
    global _cache
    values = set()
    for name, value in environ.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) or name in ("DOPPEL_AMQP_URL", "DOPPEL_DB_URL"):
            values.add(value)
        for url in value.split(",") if "://" in value else ():  # several URLs: a RabbitMQ cluster's nodes
            try:
                password = urlsplit(url.strip()).password
            except ValueError:
                password = None
            if password:
                values.add(password)
    from_environ = frozenset(v for v in values if len(v) >= _MIN_SECRET_LEN)
    cached = _cache
    if cached is not None and cached[0] == from_environ and cached[1] == _remembered_version:
        return cached[2]
    with _remembered_lock:
        version, remembered = _remembered_version, set(_remembered)
    # a remembered token is matched as a word; one that is not a plain word, or is also in the environment
    # (it may sit inside a longer word there, e.g. a TSIG secret), is looked for as a substring
    words = {v for v in remembered if _WORD.fullmatch(v) and v not in from_environ}
    made = SecretSet(from_environ | remembered, words)
    _cache = (from_environ, version, made)
    return made


def scrub(node, secrets: set[str], key: str = "", *, by_name: bool = True):
    """A copy of `node` with secret values and URL passwords replaced, and (`by_name`) secret-named fields
    masked."""
    if not isinstance(secrets, SecretSet):
        secrets = SecretSet(secrets or ())
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
        for secret in secrets.others:
            if secret in node:
                node = node.replace(secret, MASK)
        if secrets.words:
            node = _WORD.sub(lambda word: MASK if word.group(0) in secrets.words else word.group(0), node)
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
