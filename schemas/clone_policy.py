"""The `clone:` policy of a production: how its configuration is rewritten, and its personal data anonymised."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.base import Identifier, RelativePath, Strict, needs
from schemas.templates import TemplateError, placeholders
from schemas.vocabulary import ANONYMISE_METHODS, CONFIG_FORMATS


class RewriteRule(Strict):
    file = RelativePath(required=True, error_messages=needs("file: config/app.ini"))
    key = fields.String(required=True, error_messages=needs("key: database.path"),
                        validate=validate.Length(min=1, error="must name a key, e.g. database.path"))
    value = fields.Raw(required=True, allow_none=True, error_messages=needs('value: "{outputs.base_url}"'))
    format = fields.String(validate=validate.OneOf(CONFIG_FORMATS, error="must be one of {choices}"))

    @validates_schema
    def _value_is_scalar_template(self, data, **kwargs):
        value = data.get("value")
        if isinstance(value, (dict, list)):
            raise ValidationError({"value": ["must be one value (a string, number, true/false or null); "
                                             "rewrite nested keys one rule each, with a dotted key"]})
        try:
            placeholders(value)
        except TemplateError as exc:
            raise ValidationError({"value": [str(exc)]}) from None


class AnonymiseRule(Strict):
    database = Identifier(required=True, error_messages=needs("database: main"))
    table = fields.String(required=True, validate=validate.Length(min=1), error_messages=needs("table: customers"))
    column = fields.String(validate=validate.Length(min=1))
    method = fields.String(required=True, error_messages=needs("method: email"), validate=validate.OneOf(
        ANONYMISE_METHODS, error="must be one of {choices}"))
    value = fields.Raw(allow_none=True)                  # fixed: the value every row gets
    days = fields.Integer(validate=validate.Range(min=1, max=36500))  # date_shift: at most this many days
    check = fields.String(validate=validate.OneOf(("none", "luhn", "iban"), error="must be one of {choices}"))
    expression = fields.String(validate=validate.Length(min=1))  # sql: an expression of `value`

    @validates_schema
    def _column_fits_method(self, data, **kwargs):
        method, column = data.get("method"), data.get("column")
        needed = {"fixed": ("value", "value: 'redacted'"), "date_shift": ("days", "days: 30"),
                  "sql": ("expression", "expression: \"'user-' || md5(value)\"")}
        if method in needed and needed[method][0] not in data:
            raise ValidationError({needed[method][0]: [f"method {method} needs it; add e.g. {needed[method][1]}"]})
        for key, owner in (("value", "fixed"), ("days", "date_shift"), ("check", "digits"), ("expression", "sql")):
            if key in data and method != owner:
                raise ValidationError({key: [f"only method {owner} takes {key}; remove it"]})
        if method == "truncate" and column:
            raise ValidationError({"column": ["truncate empties the whole table; remove column, or use "
                                              "method: null to blank one column"]})
        if method and method != "truncate" and not column:
            raise ValidationError({"column": [f"method {method} needs the column to rewrite (or use "
                                              "method: truncate to empty the table)"]})


class ClonePolicy(Strict):
    rewrite = fields.List(fields.Nested(RewriteRule), load_default=list)
    secrets = fields.List(Identifier(), load_default=list)
    crons = fields.String(load_default="disable", validate=validate.OneOf(
        ("disable", "keep"), error="must be disable (the default: copies run no scheduled jobs) or keep"))
    anonymise = fields.List(fields.Nested(AnonymiseRule), load_default=list)
    isolate = fields.Boolean(load_default=True)

    @validates_schema(skip_on_field_errors=False)
    def _secrets_declared(self, data, **kwargs):
        declared = set(data.get("secrets", ()))
        errors = {}
        for index, rule in enumerate(data.get("rewrite", ())):
            try:
                used = placeholders(rule.get("value"))
            except TemplateError:
                continue  # reported by the rule itself
            for root, name in used:
                if root == "secrets" and name not in declared:
                    errors[index] = {"value": [f"uses secrets.{name}, which is not declared; add {name} to "
                                               "clone.secrets so each environment gets a fresh one"]}
        if errors:
            raise ValidationError({"rewrite": errors})


