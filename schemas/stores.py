"""The schema of an object store's configuration (`backups.store` in doppel.yaml, and wherever a store is named).

```yaml
store: {type: local, path: /var/lib/doppel/backups}
store: {type: swift, container: doppel-backups, cloud: dr-region}            # Keystone via clouds.yaml
store: {type: swift, container: doppel-backups, auth_url: http://127.0.0.1:8080/auth/v1.0,
        user: "test:tester", key_env: DOPPEL_SWIFT_KEY}                       # tempauth
store: {type: s3, bucket: doppel-backups, endpoint_url: https://s3.example.net,
        access_key_env: DOPPEL_S3_ACCESS_KEY, secret_key_env: DOPPEL_S3_SECRET_KEY}
```

Secrets never appear here: a field ending in `_env` names the environment
variable that holds one. A secret written inline is refused with a message that
says what to write instead.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from schemas.fields import Duration

MiB = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB,
               "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
_INLINE_SECRETS = ("key", "password", "secret", "secret_key", "token", "application_credential_secret")
_ENV_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be the name of an environment variable")
_CONTAINER = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$",
                             error="letters, digits, '.', '_' and '-' only (no '/')")


class ByteSize(fields.Field):
    """A size in bytes, written as a number of bytes or with a unit: 64MiB, 100MB, 1GiB."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        match = _SIZE.match(str(value))
        if not match:
            raise ValidationError(f"{value!r} is not a size; write e.g. 33554432, 32MiB or 100MB")
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class _StoreSpec(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True)
    orphan_grace = Duration(load_default=3600.0)   # idle time after which an unfinished upload is an orphan

    @pre_load
    def _refuse_inline_secrets(self, data, **kwargs):
        found = [name for name in _INLINE_SECRETS if name in data]
        if found:
            raise ValidationError({name: [f"secrets are never written in the configuration: put it in an "
                                          f"environment variable and name the variable in {name}_env"]
                                   for name in found})
        return data


class LocalStoreSpec(_StoreSpec):
    type = fields.String(required=True, validate=validate.Equal("local"))
    path = fields.String(required=True, validate=validate.Length(min=1))


class SwiftStoreSpec(_StoreSpec):
    type = fields.String(required=True, validate=validate.Equal("swift"))
    container = fields.String(required=True, validate=_CONTAINER)
    cloud = fields.String()                       # Keystone: an entry of clouds.yaml
    region_name = fields.String()
    interface = fields.String(load_default="public", validate=validate.OneOf(("public", "internal", "admin")))
    auth_url = fields.Url(require_tld=False)      # tempauth / v1
    user = fields.String()
    key_env = fields.String(validate=_ENV_NAME)
    segment_size = ByteSize(load_default=32 * MiB, validate=validate.Range(min=MiB, max=5 * 1024 * MiB))
    segment_threads = fields.Integer(load_default=4, validate=validate.Range(min=1, max=32))
    segment_container = fields.String(validate=_CONTAINER)
    insecure = fields.Boolean(load_default=False)

    @validates_schema
    def _one_way_to_authenticate(self, data, **kwargs):
        if bool(data.get("cloud")) == bool(data.get("auth_url")):
            raise ValidationError("give either cloud (Keystone, from clouds.yaml) or auth_url + user + key_env "
                                  "(tempauth), not both or neither", "auth_url")
        if data.get("auth_url") and not (data.get("user") and data.get("key_env")):
            raise ValidationError("tempauth needs user and key_env (the variable holding the key)", "key_env")


class S3StoreSpec(_StoreSpec):
    type = fields.String(required=True, validate=validate.Equal("s3"))
    bucket = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", error="3-63 lower-case letters, digits, '.' and '-'"))
    endpoint_url = fields.Url(require_tld=False)  # none: AWS itself
    region_name = fields.String(load_default="us-east-1")
    access_key = fields.String()                  # an access key id is not a secret
    access_key_env = fields.String(validate=_ENV_NAME)
    secret_key_env = fields.String(validate=_ENV_NAME)
    part_size = ByteSize(load_default=32 * MiB, validate=validate.Range(
        min=5 * MiB, max=5 * 1024 * MiB, error="must be between 5 MiB (S3's minimum part) and 5 GiB"))
    threads = fields.Integer(load_default=4, validate=validate.Range(min=1, max=32))
    addressing_style = fields.String(load_default="path", validate=validate.OneOf(("path", "virtual")))
    verify_tls = fields.Boolean(load_default=True)
    create_bucket = fields.Boolean(load_default=True)

    @validates_schema
    def _keys_in_pairs(self, data, **kwargs):
        has_access = bool(data.get("access_key") or data.get("access_key_env"))
        if data.get("access_key") and data.get("access_key_env"):
            raise ValidationError("give access_key or access_key_env, not both", "access_key_env")
        if has_access != bool(data.get("secret_key_env")):
            raise ValidationError("give both an access key and secret_key_env, or neither "
                                  "(then boto3's own chain: environment, instance role)", "secret_key_env")


STORE_SPECS: dict[str, type[_StoreSpec]] = {"local": LocalStoreSpec, "swift": SwiftStoreSpec, "s3": S3StoreSpec}


def load_store_spec(spec: Mapping[str, Any]) -> dict:
    """Validate a store's configuration; the error names the field and says what to write."""
    if not isinstance(spec, Mapping):
        raise ValidationError({"_schema": ["a store is a mapping with a type: local, swift or s3"]})
    kind = spec.get("type")
    if kind not in STORE_SPECS:
        raise ValidationError({"type": [f"{kind!r} is not a store type; use one of local, swift, s3"]})
    return STORE_SPECS[kind]().load(dict(spec))
