"""Deterministic pseudonyms for anonymising a clone's personal data.

Each fake is derived from the real value by HMAC-SHA256 keyed with a salt that is
random per environment: within one environment the same email always becomes the
same fake (joins and duplicates still line up), across environments it does not
(two copies cannot be correlated), and without the salt a fake cannot be traced back
by hashing candidate addresses. Fakes use reserved or invented forms (example.com
addresses, made-up syllable names) so they never belong to a real person.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

from schemas.vocabulary import VALUE_METHODS

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "br")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io")
_CODAS = ("", "", "n", "r", "l", "s", "x", "nd")
_PHONE_PUNCTUATION = " +-().\\/"


class Pseudonyms:
    """Fake values for one environment's salt."""

    def __init__(self, salt: bytes):
        if len(salt) < 16:
            raise ValueError("the anonymisation salt must be at least 16 random bytes")
        self._salt = salt

    def digest(self, method: str, value: Any) -> bytes:
        """The keyed hash a fake is made from; the method is mixed in so columns do not share fakes."""
        return hmac.new(self._salt, f"{method}\x00{_text(value)}".encode(), hashlib.sha256).digest()

    def fake(self, method: str, value: Any) -> Any:
        """The pseudonym for `value` under `method`; None stays None (nothing to hide)."""
        if value is None:
            return None
        if method == "email":
            return self.email(value)
        if method == "name":
            return self.name(value)
        if method == "phone":
            return self.phone(value)
        if method == "hash":
            return self.hash(value)
        raise ValueError(f"{method!r} is not a pseudonym method; use one of {', '.join(VALUE_METHODS)}")

    def email(self, value: Any) -> str:
        """first.last.<hex>@example.com: readable, unique enough for UNIQUE columns, undeliverable."""
        digest = self.digest("email", value)
        return f"{_word(digest[0:4], 2)}.{_word(digest[4:8], 3)}.{digest[8:13].hex()}@example.com".lower()

    def name(self, value: Any) -> str:
        """An invented 'First Last' (syllables, not a list of real names)."""
        digest = self.digest("name", value)
        return f"{_word(digest[0:4], 2).title()} {_word(digest[4:8], 3).title()}"

    def phone(self, value: Any) -> str:
        """The same shape as the original (+, spaces, dashes, brackets kept), every digit replaced.

        Anything else in the value (a name, "ext. Bob") is dropped; a value with too few
        digits to have a shape gets a made-up number in the UK's drama range.
        """
        stream = _digits(self.digest("phone", value))
        text = _text(value)
        if sum(char.isdigit() for char in text) < 4:
            return "+44 7700 9" + "".join(next(stream) for _ in range(5))
        return "".join(next(stream) if char.isdigit() else char for char in text
                       if char.isdigit() or char in _PHONE_PUNCTUATION)

    def hash(self, value: Any) -> str:
        """A 32-hex-digit token (for ids, IPs, free text that must stay distinct but unreadable)."""
        return self.digest("hash", value).hex()[:32]


def _text(value: Any) -> str:
    """What a value's pseudonym is derived from: its text (bytes by their hex)."""
    return bytes(value).hex() if isinstance(value, (bytes, bytearray, memoryview)) else str(value)


def _word(seed: bytes, syllables: int) -> str:
    number = int.from_bytes(seed, "big")
    parts = []
    for _ in range(syllables):
        number, onset = divmod(number, len(_ONSETS))
        number, vowel = divmod(number, len(_VOWELS))
        parts.append(_ONSETS[onset] + _VOWELS[vowel])
    number, coda = divmod(number, len(_CODAS))
    return "".join(parts) + _CODAS[coda]


def _digits(digest: bytes):
    """An endless stream of decimal digits drawn from `digest` (re-hashed when it runs out)."""
    block = digest
    while True:
        for byte in block:
            if byte < 250:  # 250 = 25 * 10: keeps the digits uniform
                yield str(byte % 10)
        block = hashlib.sha256(block).digest()
