"""What the config file's schemas share: strict mappings that name the closest known key, required keys that
say what to write, identifiers, and errors as flat `dotted.key: message` lines."""
from __future__ import annotations

import difflib
import posixpath
import re
from typing import Any, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ProductionConfigError(ValueError):
    """The productions section is wrong; `str()` lists every error as `key.path: what to write`."""

    def __init__(self, messages: Mapping, prefix: str = "productions"):
        self.messages = messages
        self.lines = format_errors(messages, prefix)
        super().__init__("; ".join(self.lines))


def format_errors(messages: Any, prefix: str = "") -> list[str]:
    """Marshmallow's nested error dict as flat `dotted.key[index]: message` lines."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {message}" if prefix else message for message in messages]
    if isinstance(messages, Mapping):
        lines = []
        for key, value in messages.items():
            if key == "_schema":
                here = prefix
            elif isinstance(key, int):
                here = f"{prefix}[{key}]"
            elif key == "value" and isinstance(value, Mapping) and prefix:
                here = prefix  # a Dict field's value errors: the key already names the entry
            else:
                here = f"{prefix}.{key}" if prefix else str(key)
            lines.extend(format_errors(value, here))
        return lines
    return [f"{prefix}: {messages}"]


class Strict(Schema):
    """Refuses unknown keys, naming the closest known one (a typo must not silently switch a rule off)."""

    class Meta:
        unknown = EXCLUDE  # reported by _refuse_unknown below, with a suggestion, alongside other errors

    error_messages = {"type": "must be a mapping of keys to values"}

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _refuse_unknown(self, data, original_data, **kwargs):
        if not isinstance(original_data, Mapping):
            return
        known = [name for name, field in self.fields.items() if not field.dump_only]
        errors = {}
        for key in original_data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys here: {', '.join(sorted(known))}"
                errors[key] = [f"unknown key; {hint}"]
        if errors:
            raise ValidationError(errors)


def needs(example: str) -> dict:
    """error_messages for a required key, saying what to write."""
    example = example.replace("{", "{{").replace("}", "}}")  # marshmallow formats these messages
    return {"required": f"missing; add it, e.g. {example}"}


class Identifier(fields.String):
    """A name used in output keys and placeholders: db_<name>_path, {secrets.<name>}."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not NAME.match(text):
            raise ValidationError(f"{text!r} must be lower-case letters, digits and '_', starting with a letter "
                                  "(e.g. main)")
        return text


def _relative_path(value: str) -> str:
    """A normalised path inside the production directory; refuses absolute paths and '..'."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a path relative to the production directory (e.g. data/shop.db)")
    if value.startswith("/"):
        raise ValidationError(f"{value!r} is absolute; write it relative to the production's path "
                              "(e.g. data/shop.db, not /srv/shop/data/shop.db)")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise ValidationError(f"{value!r} leaves the production directory; keep components inside it")
    return normal


class RelativePath(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return _relative_path(super()._deserialize(value, attr, data, **kwargs))


ENV_VAR = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be the name of an environment variable "
                                                              "(e.g. SHOP_DB_PASSWORD), not the password")


class DatabaseServer(Strict):
    """Where a database server is reached, and as whom; the password is read from `password_env` at run time."""
    host = fields.String(load_default="127.0.0.1", validate=validate.Length(min=1))
    port = fields.Integer(validate=validate.Range(min=1, max=65535))
    socket = fields.String(validate=validate.Length(min=1))  # a socket directory (postgresql) or file (mariadb)
    user = fields.String(required=True, validate=validate.Length(min=1), error_messages=needs("user: shop"))
    password_env = fields.String(validate=ENV_VAR)
