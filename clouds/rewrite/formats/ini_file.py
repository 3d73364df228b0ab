"""ini files: a dotted key is an option of a section, or a dotted option before any section (php.ini).

Edited line by line; configparser's continuation lines belong to the value they follow.
"""
from __future__ import annotations

import re
from typing import Any

from clouds.rewrite.formats.text import append_line, line_ending, scalar_text

_INI_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_INI_COMMENT = re.compile(r"^\s*([;#]|$)")
_INI_KEY = re.compile(r"^(?P<indent>[ \t]*)(?P<key>[^=:\s;#\[][^=:]*?)(?P<sep>[ \t]*[=:][ \t]*)"
                      r"(?P<value>.*?)(?P<eol>\r?\n)?$")


def _ini_sections(lines: list[str]) -> list[tuple[str | None, int, int]]:
    """(section name or None for the top, first line index, end line index) for each section."""
    bounds: list[tuple[str | None, int]] = [(None, 0)]
    for index, line in enumerate(lines):
        match = _INI_SECTION.match(line)
        if match:
            bounds.append((match.group(1).strip(), index))
    result = []
    for position, (name, start) in enumerate(bounds):
        end = bounds[position + 1][1] if position + 1 < len(bounds) else len(lines)
        result.append((name, start, end))
    return result


def _ini_split_key(lines: list[str], sections: list[tuple[str | None, int, int]],
                   key: str) -> tuple[str | None, str]:
    """Section and option of a dotted key: the longest section that exists, or a dotted option
    before any section (php.ini style `session.save_path`), or else a new section named by the first part."""
    named = [name for name, _, _ in sections if name]
    for name in sorted(named, key=len, reverse=True):
        if key.startswith(name + "."):
            return name, key[len(name) + 1:]
    _, top_start, top_end = sections[0]
    if "." not in key or not named or _ini_find(lines, top_start, top_end, key):
        return None, key
    section, option = key.split(".", 1)
    return section, option


def _ini_find(lines: list[str], start: int, end: int, option: str) -> tuple[int, int] | None:
    """(line index, end of its continuation lines) of `option` between start and end; case-insensitive."""
    index = start
    while index < end:
        match = None if _INI_COMMENT.match(lines[index]) or _INI_SECTION.match(lines[index]) else \
            _INI_KEY.match(lines[index])
        if match and match.group("key").strip().lower() == option.lower():
            indent = len(match.group("indent"))
            stop = index + 1
            while stop < end and lines[stop].strip() and \
                    len(lines[stop]) - len(lines[stop].lstrip()) > indent and not _INI_SECTION.match(lines[stop]):
                stop += 1  # configparser continuation lines belong to this value
            return index, stop
        index += 1
    return None


def _ini_separator(lines: list[str]) -> str:
    for line in lines:
        if not _INI_COMMENT.match(line) and not _INI_SECTION.match(line):
            match = _INI_KEY.match(line)
            if match:
                return match.group("sep")
    return " = "


def rewrite(text: str, key: str, value: Any) -> str:
    lines = text.splitlines(keepends=True)
    sections = _ini_sections(lines)
    section, option = _ini_split_key(lines, sections, key)
    value_text = scalar_text(value, key)
    newline = line_ending(text)
    for name, start, end in sections:
        if name != section:
            continue
        first = start if name is None else start + 1
        found = _ini_find(lines, first, end, option)
        if found:
            index, stop = found
            match = _INI_KEY.match(lines[index])
            eol = match.group("eol") or ""
            lines[index:stop] = [f"{match.group('indent')}{match.group('key')}{match.group('sep')}{value_text}{eol}"]
            return "".join(lines)
        # Add the option after the section's last non-blank line.
        insert_at = end
        while insert_at > first and not lines[insert_at - 1].strip():
            insert_at -= 1
        if insert_at and not lines[insert_at - 1].endswith(("\n", "\r")):
            lines[insert_at - 1] += newline
        lines.insert(insert_at, f"{option}{_ini_separator(lines)}{value_text}{newline}")
        return "".join(lines)
    if section is None:
        return f"{option}{_ini_separator(lines)}{value_text}{newline}" + text
    text = append_line(text, "") if text.strip() else text
    return append_line(append_line(text, f"[{section}]"), f"{option}{_ini_separator(lines)}{value_text}")


def read(text: str, key: str) -> Any:
    lines = text.splitlines(keepends=True)
    sections = _ini_sections(lines)
    section, option = _ini_split_key(lines, sections, key)
    for name, start, end in sections:
        if name == section:
            found = _ini_find(lines, start if name is None else start + 1, end, option)
            if found:
                return _INI_KEY.match(lines[found[0]]).group("value").strip()
    return None
