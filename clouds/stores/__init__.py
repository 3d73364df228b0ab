"""Object stores for backups, independent of the production's cloud: local directory, Swift, S3.

`make_store(spec)` builds one from its configuration (schemas/stores.py). Secrets
come only from the environment variables the configuration names (`key_env`,
`secret_key_env`, ...), read here, once, when the store is made.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from core.stores import ObjectInfo, ObjectMissing, ObjectStore, StoreError

__all__ = ["ObjectInfo", "ObjectMissing", "ObjectStore", "StoreConfigError", "StoreError", "make_store"]


class StoreConfigError(ValueError):
    """The store's configuration is invalid or names an environment variable that is not set."""


def make_store(spec: Mapping, *, environ: Mapping[str, str] | None = None) -> ObjectStore:
    """A store from its configuration, e.g. `{type: swift, container: backups, cloud: dr}`."""
    from marshmallow import ValidationError

    from schemas.stores import load_store_spec

    try:
        config = load_store_spec(spec)
    except ValidationError as exc:
        raise StoreConfigError(f"{spec.get('type', '?')} store configuration: {exc.messages}") from None
    environ = os.environ if environ is None else environ
    builder = {"local": _local, "swift": _swift, "s3": _s3}[config.pop("type")]
    return builder(config, environ)


def _local(config: dict, environ) -> ObjectStore:
    from clouds.stores.local import LocalStore
    return LocalStore(Path(config["path"]), orphan_grace=config["orphan_grace"])


def _swift(config: dict, environ) -> ObjectStore:
    from clouds.stores.swift import SwiftStore
    key_env = config.pop("key_env", None)
    key = _from_env(environ, key_env, f"swift store {config['container']!r}", "key_env") if key_env else None
    return SwiftStore(config.pop("container"), key=key, **config)


def _s3(config: dict, environ) -> ObjectStore:
    from clouds.stores.s3 import S3Store
    what = f"s3 store {config['bucket']!r}"
    access_env, secret_env = config.pop("access_key_env", None), config.pop("secret_key_env", None)
    if access_env:
        config["access_key"] = _from_env(environ, access_env, what, "access_key_env")
    secret = _from_env(environ, secret_env, what, "secret_key_env") if secret_env else None
    return S3Store(config.pop("bucket"), secret_key=secret, **config)


def _from_env(environ: Mapping[str, str], variable: str, what: str, field: str) -> str:
    value = environ.get(variable)
    if not value:
        raise StoreConfigError(f"{what}: the environment variable {variable} (named by {field}) is not set; "
                               f"export it before starting Doppel")
    return value
