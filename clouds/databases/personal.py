"""Columns that look personal: by their name, and by a sample of their values, read inside the server.

Used twice: a clone fails when such a column has no anonymise rule (a column added
to production since the rules were written is reported, never silently copied), and
`doppel anonymise check` lists them. Only counts leave the server, never a value:
each engine's `sampler` (pg_anonymise.py, maria_anonymise.py) counts, inside the
server, how many of a sample of a column's values look like emails or phones.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from clouds.databases.rules import Column, label

# Column names that say what they hold (matched on the name's words: customer_email, mobilePhone, dob).
_NAME_PATTERNS = (
    ("email", r"e?_?mail(_?address)?"),
    ("phone", r"(tele)?phone(_?number)?|mobile|cell(_?phone)?|fax|msisdn|tel"),
    ("name", r"(first|last|given|family|middle|full|sur|maiden|nick|user)_?name|surname|forename|fullname"),
    ("address", r"(street|postal|home|billing|shipping)_?address|address\d?|street|postcode|zip(_?code)?"),
    ("birth date", r"birth_?date|date_?of_?birth|dob|birthday"),
    ("identity number", r"ssn|social_?security(_?number)?|national_?id|passport(_?number)?|tax_?id|nino"),
    ("bank or card number", r"iban|bic|card_?number|pan|cc_?number|account_?number|sort_?code"),
    ("network address", r"ip|ip_?address|remote_?addr"),
)
NAME_RULES = [(what, re.compile(rf"^(?:.*_)?(?:{pattern})$", re.IGNORECASE)) for what, pattern in _NAME_PATTERNS]
EMAIL_VALUE = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
PHONE_VALUE = r"^\+?[0-9][0-9 ().\/-]{6,}[0-9]$"
SAMPLE = 200
_SHARE = 0.5  # at least this share of a sample looking like emails or phones makes a column look personal
TEXT_TYPES = ("text", "character varying", "character", "varchar", "char", "tinytext", "mediumtext", "longtext")


def _words(name: str) -> str:
    """camelCase and spaces as snake_case words: mobilePhone -> mobile_phone."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace(" ", "_").replace("-", "_").lower()


def by_name(column: str) -> str | None:
    """What a column's name says it holds (email, phone, name ...), or None."""
    words = _words(column)
    for what, pattern in NAME_RULES:
        if pattern.match(words):
            return what
    return None


def by_values(emails: int, phones: int, sampled: int) -> str | None:
    """What a sample's counts say a column holds, or None."""
    if sampled and emails / sampled >= _SHARE:
        return "email values"
    if sampled and phones / sampled >= _SHARE:
        return "phone values"
    return None


def _is_text(type_name: str) -> bool:
    return type_name.split("(")[0].strip().lower() in TEXT_TYPES


Sampler = Callable[[Column], tuple[int, int, int]]  # a column -> (emails, phones, values sampled)


def personal_columns(types: Mapping[Column, str], sample: Sampler) -> dict[Column, str]:
    """Every column that looks personal, with why: by its name, or (a text column) by a sample of its values."""
    found = {}
    for column, type_name in sorted(types.items()):
        reason = by_name(column[2])
        if reason is None and _is_text(type_name):
            reason = by_values(*sample(column))
        if reason:
            found[column] = reason
    return found


def unruled_personal_columns(types: Mapping[Column, str], covered: Iterable[tuple], sample: Sampler) -> list[str]:
    """`table.column (why)` for each column that looks personal and that no rule covers (a column, or a whole
    table truncated)."""
    covered = set(covered)
    candidates = {column: type_name for column, type_name in types.items()
                  if column not in covered and column[:2] not in covered}
    return [f"{label(column)} ({why})" for column, why in personal_columns(candidates, sample).items()]
