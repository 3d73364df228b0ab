"""What the engines' fakes share: the key's HMAC pads, the methods that make text, and which column types take which.

Both engines compute the same fakes from the same HMAC-SHA256 under the
environment's key (pg_fakes.py in PostgreSQL's SQL, maria_fakes.py in MariaDB's),
so a customer's email is masked to the same fake in a PostgreSQL and a MariaDB
database of one environment, and joins across them hold too. The MAC is of
`method|value`; another attempt (a fake taken, or equal to its own value) uses the
SHA-256 of the MAC and the attempt number as 4 big-endian bytes.
"""
from __future__ import annotations

import hashlib
import hmac

TEXT_METHODS = ("email", "first_name", "last_name", "full_name", "phone", "address", "text", "hash", "digits")
# Methods whose fakes fall among few possible values (a shifted day, a redigited short number): one may equal
# another row's production value by chance, so their after-check is per row (this row's value changed).
DENSE_METHODS = ("date_shift", "digits", "phone")


def pads(key: bytes) -> tuple[str, str]:
    """HMAC-SHA256's inner and outer pads for `key`, as hex, for the session's settings or variables."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()


def reference_mac(key: bytes, message: str) -> bytes:
    """What the engines' doppel_mac computes, in Python: the tests hold the SQL to it."""
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def canonical(method: str) -> str:
    return "full_name" if method == "name" else method


def method_of(rule: dict) -> str:
    return canonical(rule["method"])


def is_dense(method: str, integer_column: bool) -> bool:
    """Whether `method`'s fakes are few enough that one may equal another row's production value by chance."""
    return canonical(method) in DENSE_METHODS or (method == "hash" and integer_column)


def refuse_text_into(method: str, column_type: str) -> None:
    """ValueError for a method that makes text, ruled on a column of numbers or dates (digits makes numbers too)."""
    if method != "digits":
        raise ValueError(f"{method} makes text; the column is {column_type} (use hash, digits, date_shift, "
                         "fixed, null or sql)")
