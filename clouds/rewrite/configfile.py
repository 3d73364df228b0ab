"""Rewriting one key of a config file, keeping everything else in the file as it was.

Formats: `ini`, `env` (.env files), `yaml`, `json` and `php` (`define('KEY', value);`).
Keys are dotted for nesting (`database.path` is key `path` of section `database` in
ini, of mapping `database` in YAML/JSON); `env` and `php` keys are flat names.

Edits are surgical: ini, .env and PHP are edited line by line, and YAML is edited at
the exact position the YAML parser reports for the value, so comments, order and
layout survive. JSON has no comments; its key order and indentation are kept.
A key that is not there is added where a person would add it.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from schemas.vocabulary import CONFIG_FORMATS, detect_format

class RewriteError(ValueError):
    """A key could not be rewritten; the message names the file, the key and what to do."""


def rewrite_text(text: str, fmt: str, key: str, value: Any) -> str:
    """`text` with `key` set to `value` in format `fmt`; everything else kept."""
    try:
        editor = _EDITORS[fmt]
    except KeyError:
        raise RewriteError(f"unknown config format {fmt!r}; use one of {', '.join(CONFIG_FORMATS)}") from None
    return editor(text, key, value)


def read_value(text: str, fmt: str, key: str) -> Any:
    """The value of `key` as the format's own reader sees it (None when absent)."""
    return _READERS[fmt](text, key)


def rewrite_file(path: Path, fmt: str, changes: Iterable[tuple[str, Any]]) -> None:
    """Apply every (key, value) change to the file at `path`, written once, atomically."""
    path = Path(path)
    text = path.read_text()
    for key, value in changes:
        try:
            text = rewrite_text(text, fmt, key, value)
        except RewriteError as exc:
            raise RewriteError(f"{path.name}: {exc}") from None
    replace_text(path, text)


def replace_text(path: Path, text: str) -> None:
    """Write `text` over `path` atomically (a reader never sees half a file), keeping its mode."""
    tmp = path.with_name(f".{path.name}.doppel-tmp")
    tmp.write_text(text)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def _scalar_text(value: Any, key: str) -> str:
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


def _line_ending(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _append_line(text: str, line: str) -> str:
    newline = _line_ending(text)
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + line + newline


# --- ini ----------------------------------------------------------------------------

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


def _ini_rewrite(text: str, key: str, value: Any) -> str:
    lines = text.splitlines(keepends=True)
    sections = _ini_sections(lines)
    section, option = _ini_split_key(lines, sections, key)
    value_text = _scalar_text(value, key)
    newline = _line_ending(text)
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
    text = _append_line(text, "") if text.strip() else text
    return _append_line(_append_line(text, f"[{section}]"), f"{option}{_ini_separator(lines)}{value_text}")


def _ini_read(text: str, key: str) -> Any:
    lines = text.splitlines(keepends=True)
    sections = _ini_sections(lines)
    section, option = _ini_split_key(lines, sections, key)
    for name, start, end in sections:
        if name == section:
            found = _ini_find(lines, start if name is None else start + 1, end, option)
            if found:
                return _INI_KEY.match(lines[found[0]]).group("value").strip()
    return None


# --- .env ---------------------------------------------------------------------------

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


def _env_rewrite(text: str, key: str, value: Any) -> str:
    value_text = _scalar_text(value, key)
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if match and match.group("key") == key:
            written, tail = _env_split(match.group("rest"))
            lines[index] = (f"{match.group('lead')}{key}{match.group('sep')}{_env_quote(value_text, written)}"
                            f"{tail}{match.group('eol') or ''}")
            return "".join(lines)
    return _append_line(text, f"{key}={_env_quote(value_text, '')}")


def _env_read(text: str, key: str) -> Any:
    value = None
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if match and match.group("key") == key:
            value = _env_unquote(_env_split(match.group("rest"))[0])  # the last one wins, as in a shell
    return value


# --- YAML ---------------------------------------------------------------------------

def _yaml_scalar(value: Any, flow: bool) -> str:
    """`value` as YAML text: plain when it reads back as the same value, double-quoted otherwise."""
    if isinstance(value, str):
        if not flow and value and "\n" not in value and value == value.strip():
            try:
                if yaml.safe_load(f"k: {value}") == {"k": value}:
                    return value
            except yaml.YAMLError:
                pass
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise RewriteError(f"only strings, numbers, true/false and null can be written, not a {type(value).__name__}")


def _yaml_find(node: yaml.MappingNode, name: str):
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == name:
            return key_node, value_node
    return None


def _yaml_last_end(node) -> int:
    """Where the text of `node`'s last leaf ends (the mark of a block collection ends too late)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        node = node.value[-1][1] if isinstance(node, yaml.MappingNode) else node.value[-1]
    return node.end_mark.index


def _yaml_insert(text: str, mapping: yaml.MappingNode, parts: list[str], value: Any) -> str:
    """Add the missing `parts` (a nested key path) under a block `mapping`, after its last entry."""
    if mapping.flow_style or not mapping.value:
        raise RewriteError(f"cannot add {'.'.join(parts)} to a {{flow}} mapping; add the key in block style to the "
                           "file in production, or write the whole mapping in block style")
    indent = mapping.value[0][0].start_mark.column
    position = _yaml_last_end(mapping)
    if position == 0 or text[position - 1] not in "\n\r":
        newline_at = text.find("\n", position)
        position = len(text) if newline_at < 0 else newline_at + 1
    newline = _line_ending(text)
    lines = []
    for depth, part in enumerate(parts):
        pad = " " * (indent + 2 * depth)
        key_text = _yaml_scalar(part, flow=False)
        tail = f" {_yaml_scalar(value, flow=False)}" if depth == len(parts) - 1 else ""
        lines.append(f"{pad}{key_text}:{tail}{newline}")
    prefix = newline if position == len(text) and text and not text.endswith(("\n", "\r")) else ""
    return text[:position] + prefix + "".join(lines) + text[position:]


def _yaml_rewrite(text: str, key: str, value: Any) -> str:
    parts = key.split(".")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RewriteError(f"key {key}: the file is not one valid YAML document ({exc.__class__.__name__}); "
                           "fix the file in production or rewrite it as JSON") from None
    if root is None:
        lines = [f"{'  ' * depth}{part}:" for depth, part in enumerate(parts)]
        lines[-1] += f" {_yaml_scalar(value, flow=False)}"
        return _append_line(text, "\n".join(lines)) if text.strip() else "\n".join(lines) + "\n"
    node, flow = root, False
    for depth, part in enumerate(parts):
        if not isinstance(node, yaml.MappingNode):
            where = ".".join(parts[:depth]) or "the document"
            raise RewriteError(f"key {key}: {where} is not a mapping, so it cannot hold {part!r}")
        flow = flow or bool(node.flow_style)
        found = _yaml_find(node, part)
        if found is None:
            return _yaml_insert(text, node, parts[depth:], value)
        key_node, node = found
    if not isinstance(node, yaml.ScalarNode):
        raise RewriteError(f"key {key} holds a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}; "
                           "rewrite one of its leaf keys instead")
    start, end = node.start_mark.index, node.end_mark.index
    if start == end:  # `key:` with nothing after it: write the value right after the colon
        start = end = text.index(":", key_node.end_mark.index) + 1
        return text[:start] + " " + _yaml_scalar(value, flow) + text[end:]
    while end > start and text[end - 1] in "\r\n":
        end -= 1  # a block scalar (|, >) ends after its line break: keep the line break
    return text[:start] + _yaml_scalar(value, flow) + text[end:]


def _yaml_read(text: str, key: str) -> Any:
    node = yaml.safe_load(text)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# --- JSON ---------------------------------------------------------------------------

def _json_indent(text: str) -> str | None:
    match = re.search(r"^[{\[]\s*?\n([ \t]+)\S", text.lstrip(), re.M)
    return match.group(1) if match else None


def _json_rewrite(text: str, key: str, value: Any) -> str:
    try:
        document = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise RewriteError(f"key {key}: the file is not valid JSON (line {exc.lineno}); fix it in production") from None
    parts = key.split(".")
    node = document
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node, dict):
            raise RewriteError(f"key {key}: {'.'.join(parts[:depth]) or 'the document'} is not an object")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise RewriteError(f"key {key}: {'.'.join(parts[:-1]) or 'the document'} is not an object")
    node[parts[-1]] = value
    indent = _json_indent(text)
    out = json.dumps(document, indent=indent, ensure_ascii=False) if indent else \
        json.dumps(document, ensure_ascii=False)
    return out + ("\n" if text.endswith("\n") or not text else "")


def _json_read(text: str, key: str) -> Any:
    node = json.loads(text)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# --- PHP define() -------------------------------------------------------------------

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


def _php_rewrite(text: str, key: str, value: Any) -> str:
    literal = _php_literal(value)
    for match in _PHP_DEFINE.finditer(text):
        if match.group("name") == key:
            return text[:match.start("value")] + literal + text[match.end("value"):]
    line = f"define('{key}', {literal});"
    closing = re.search(r"\?>\s*$", text)
    if closing:  # keep the closing tag last
        newline = _line_ending(text)
        return text[:closing.start()] + line + newline + text[closing.start():]
    return _append_line(text, line)


def _php_read(text: str, key: str) -> Any:
    for match in _PHP_DEFINE.finditer(text):
        if match.group("name") == key:
            return _php_value(match.group("value"))
    return None


_EDITORS = {"ini": _ini_rewrite, "env": _env_rewrite, "yaml": _yaml_rewrite, "json": _json_rewrite,
            "php": _php_rewrite}
_READERS = {"ini": _ini_read, "env": _env_read, "yaml": _yaml_read, "json": _json_read, "php": _php_read}
