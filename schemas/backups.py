"""The `backups:` section of doppel.yaml: where backups go, how they are compressed and kept."""
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema


class Retention(Schema):
    class Meta:
        unknown = RAISE
    keep_last = fields.Integer(load_default=7, validate=validate.Range(min=0))
    daily = fields.Integer(load_default=7, validate=validate.Range(min=0))
    weekly = fields.Integer(load_default=4, validate=validate.Range(min=0))
    monthly = fields.Integer(load_default=6, validate=validate.Range(min=0))

    @validates_schema
    def _keeps_something(self, data, **kwargs):
        if not any(data.values()):
            raise ValidationError("a policy that keeps nothing would delete every backup; "
                                  "set at least one of keep_last, daily, weekly, monthly")


class BackupsSection(Schema):
    class Meta:
        unknown = RAISE
    store = fields.Dict(load_default=None, allow_none=True)  # checked by schemas.stores; None: the driver's own
    compression = fields.String(load_default="zstd", validate=validate.OneOf(["zstd", "gzip"]))
    retention = fields.Nested(Retention, load_default=lambda: Retention().load({}))

    @validates_schema
    def _store_is_valid(self, data, **kwargs):
        if data.get("store"):
            from schemas.stores import load_store_spec
            try:
                load_store_spec(data["store"])
            except ValidationError as exc:
                raise ValidationError({"store": exc.messages}) from None
