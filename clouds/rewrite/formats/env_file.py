""".env files: `KEY=value` lines (an `export` in front kept), flat keys, quoted as the shell reads them."""
from __future__ import annotations

import re
from typing import Any

from clouds.rewrite.formats.text import append_line, scalar_text

_ENV_LINE = re.compile(r"^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.]*)(?P<sep>[ \t]*=[ \t]*)"
                       r"(?P<rest>.*?)(?P<eol>\r?\n)?$")
_ENV_BARE = re.compile(r"^[A-Za-z0-9_./:@%+,=~-]*$")


def _env_split(rest: str) -> tuple[str, str]:
    """(the value as written, what follows it: an inline comment and spaces)."""
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        index = 1
        while index < len(rest):
            if rest[index] == "\\" and quote == '"':
                index += 2
                continue
            if rest[index] == quote:
                return rest[:index + 1], rest[index + 1:]
            index += 1
        return rest, ""
    match = re.search(r"[ \t]+#", rest)
    return (rest[:match.start()], rest[match.start():]) if match else (rest, "")


def _env_quote(text: str, previous: str) -> str:
    """`text` as a .env value: bare when safe, else quoted the way the line was, else single quotes."""
    if _ENV_BARE.match(text) and previous[:1] not in ("'", '"'):
        return text
    if previous[:1] != '"' and "'" not in text:
        return f"'{text}'"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return f'"{escaped}"'


def _env_unquote(written: str) -> str:
    if len(written) >= 2 and written[0] == written[-1] == "'":
        return written[1:-1]
    if len(written) >= 2 and written[0] == written[-1] == '"':
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), written[1:-1])
    return written.strip()


def rewrite(text: str, key: str, value: Any) -> str:
    value_text = scalar_text(value, key)
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if match and match.group("key") == key:
            written, tail = _env_split(match.group("rest"))
            lines[index] = (f"{match.group('lead')}{key}{match.group('sep')}{_env_quote(value_text, written)}"
                            f"{tail}{match.group('eol') or ''}")
            return "".join(lines)
    return append_line(text, f"{key}={_env_quote(value_text, '')}")


def read(text: str, key: str) -> Any:
    value = None
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if match and match.group("key") == key:
            value = _env_unquote(_env_split(match.group("rest"))[0])  # the last one wins, as in a shell
    return value
