"""JSON files: no comments to keep; the key order and the indentation are kept."""
from __future__ import annotations

import json
import re
from typing import Any

from clouds.rewrite.formats.text import RewriteError


def _json_indent(text: str) -> str | None:
    match = re.search(r"^[{\[]\s*?\n([ \t]+)\S", text.lstrip(), re.M)
    return match.group(1) if match else None


def rewrite(text: str, key: str, value: Any) -> str:
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


def read(text: str, key: str) -> Any:
    node = json.loads(text)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
