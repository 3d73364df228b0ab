"""YAML files, edited at the exact position the YAML parser reports for the value.

Comments, order and layout survive. A key that is not there is added under its
block mapping, after the mapping's last entry.
"""
from __future__ import annotations

import json
from typing import Any

import yaml

from clouds.rewrite.formats.text import RewriteError, append_line, line_ending


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
    newline = line_ending(text)
    lines = []
    for depth, part in enumerate(parts):
        pad = " " * (indent + 2 * depth)
        key_text = _yaml_scalar(part, flow=False)
        tail = f" {_yaml_scalar(value, flow=False)}" if depth == len(parts) - 1 else ""
        lines.append(f"{pad}{key_text}:{tail}{newline}")
    prefix = newline if position == len(text) and text and not text.endswith(("\n", "\r")) else ""
    return text[:position] + prefix + "".join(lines) + text[position:]


def rewrite(text: str, key: str, value: Any) -> str:
    parts = key.split(".")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RewriteError(f"key {key}: the file is not one valid YAML document ({exc.__class__.__name__}); "
                           "fix the file in production or rewrite it as JSON") from None
    if root is None:
        lines = [f"{'  ' * depth}{part}:" for depth, part in enumerate(parts)]
        lines[-1] += f" {_yaml_scalar(value, flow=False)}"
        return append_line(text, "\n".join(lines)) if text.strip() else "\n".join(lines) + "\n"
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


def read(text: str, key: str) -> Any:
    node = yaml.safe_load(text)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
