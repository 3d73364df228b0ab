"""PHP config files: `define('KEY', value);`, edited in place; a new define goes before a closing `?>`."""
from __future__ import annotations

import re
from typing import Any

from clouds.rewrite.formats.text import RewriteError, append_line, line_ending

_PHP_STRING = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_PHP_DEFINE = re.compile(
    r"(?P<head>\bdefine\s*\(\s*)(?P<q>['\"])(?P<name>[^'\"]+)(?P=q)(?P<comma>\s*,\s*)"
    rf"(?P<value>{_PHP_STRING}|[^;]*?)(?P<tail>\s*(?:,\s*(?:true|false)\s*)?\)\s*;)", re.I | re.S)


def _php_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise RewriteError(f"only strings, numbers, true/false and null can be written, not a {type(value).__name__}")


def _php_value(written: str) -> Any:
    written = written.strip()
    if len(written) >= 2 and written[0] == written[-1] == "'":
        return re.sub(r"\\([\\'])", r"\1", written[1:-1])
    if len(written) >= 2 and written[0] == written[-1] == '"':
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), written[1:-1])
    lowered = written.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    for number in (int, float):
        try:
            return number(written)
        except ValueError:
            pass
    return written  # an expression (getenv('X'), __DIR__ . '/db'): given back as written


def rewrite(text: str, key: str, value: Any) -> str:
    literal = _php_literal(value)
    for match in _PHP_DEFINE.finditer(text):
        if match.group("name") == key:
            return text[:match.start("value")] + literal + text[match.end("value"):]
    line = f"define('{key}', {literal});"
    closing = re.search(r"\?>\s*$", text)
    if closing:  # keep the closing tag last
        newline = line_ending(text)
        return text[:closing.start()] + line + newline + text[closing.start():]
    return append_line(text, line)


def read(text: str, key: str) -> Any:
    for match in _PHP_DEFINE.finditer(text):
        if match.group("name") == key:
            return _php_value(match.group("value"))
    return None
