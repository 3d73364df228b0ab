"""Value templates of the clone policy, and the fresh secrets they may use.

A rewrite rule's value may hold placeholders: `{outputs.NAME}` (the stack's
outputs: base_url, db_main_path ...), `{secrets.NAME}` (generated for this
environment, never production's), `{env}` and `{production}`. `{{` and `}}` are
literal braces. Non-string values (true, 0, null) pass through untouched, so a
rule can also switch a setting off.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAMED_ROOTS = ("outputs", "secrets")
_BARE = ("env", "production")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
HOW = "use {outputs.NAME}, {secrets.NAME}, {env} or {production}; write {{ or }} for a literal brace"


class TemplateError(ValueError):
    """A value template is malformed or refers to something that is not there."""


def placeholders(template: Any) -> list[tuple[str, str | None]]:
    """The (root, name) pairs a template refers to, e.g. [("outputs", "base_url"), ("env", None)]."""
    if not isinstance(template, str):
        return []
    found = []
    for match in _TOKEN.finditer(template):
        text = match.group(0)
        if text in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise TemplateError(f"stray {text!r} in {template!r}; {HOW}")
        found.append(_parse(match.group(1).strip(), template))
    return found


def _parse(inner: str, template: str) -> tuple[str, str | None]:
    root, dot, name = inner.partition(".")
    if not dot and root in _BARE:
        return root, None
    if dot and root in _NAMED_ROOTS and _NAME.match(name):
        return root, name
    raise TemplateError(f"unknown placeholder {{{inner}}} in {template!r}; {HOW}")


def render(template: Any, *, outputs: Mapping[str, Any], secrets: Mapping[str, str],
           env: str, production: str) -> Any:
    """The template with its placeholders filled in; non-strings are returned as they are.

    A missing output or secret raises TemplateError naming it (never a secret's value).
    """
    if not isinstance(template, str):
        return template
    placeholders(template)  # validates the whole template first

    def fill(match: re.Match) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        root, name = _parse(match.group(1).strip(), template)
        if root == "env":
            return env
        if root == "production":
            return production
        source = outputs if root == "outputs" else secrets
        if name not in source:
            known = ", ".join(sorted(source)) or "none"
            raise TemplateError(f"{template!r} needs {root}.{name}, which this environment does not have "
                                f"(it has: {known})")
        return str(source[name])

    return _TOKEN.sub(fill, template)
