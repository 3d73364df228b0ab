"""What the format editors share: the error they raise, a scalar as one line of text, line endings."""
from __future__ import annotations

from typing import Any


class RewriteError(ValueError):
    """A key could not be rewritten; the message names the file, the key and what to do."""


def scalar_text(value: Any, key: str) -> str:
    """A scalar as ini/.env text: true/false for booleans, empty for null; no line breaks."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise RewriteError(f"key {key}: only strings, numbers, true/false and null can be written, "
                           f"not a {type(value).__name__}")
    if "\n" in text or "\r" in text:
        raise RewriteError(f"key {key}: the value holds a line break, which this format cannot hold on one line")
    return text


def line_ending(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def append_line(text: str, line: str) -> str:
    newline = line_ending(text)
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + line + newline
