"""Stores from configuration: the right store, secrets only from the environment, errors that say what to do."""
from __future__ import annotations

import pytest

from clouds.stores import StoreConfigError, make_store
from clouds.stores.local import LocalStore
from clouds.stores.s3 import S3Store
from clouds.stores.swift import SwiftStore

SWIFT = {"type": "swift", "container": "backups", "auth_url": "http://127.0.0.1:8080/auth/v1.0",
         "user": "test:tester", "key_env": "DOPPEL_SWIFT_KEY", "segment_size": "8MiB", "segment_threads": 2}


def test_each_type_builds_its_store(tmp_path):
    env = {"DOPPEL_SWIFT_KEY": "s3cr3t-value", "S3_SECRET": "other-s3cr3t"}
    swift = make_store(SWIFT, environ=env)
    s3 = make_store({"type": "s3", "bucket": "doppel-backups", "endpoint_url": "http://127.0.0.1:8080",
                     "access_key": "test:tester", "secret_key_env": "S3_SECRET", "part_size": "5MiB"}, environ=env)
    local = make_store({"type": "local", "path": str(tmp_path), "orphan_grace": "15m"}, environ=env)

    assert isinstance(swift, SwiftStore) and swift.segment_size == 8 * 1024 * 1024 and swift.segment_threads == 2
    assert swift.segment_container == "backups_segments" and swift.name == "swift:backups"
    assert isinstance(s3, S3Store) and s3.part_size == 5 * 1024 * 1024 and s3.name == "s3:doppel-backups"
    assert isinstance(local, LocalStore) and local.orphan_grace == 900
    # the secret is in none of the things that end up in logs
    for store in (swift, s3):
        assert "s3cr3t" not in repr(store) and "s3cr3t" not in store.name
        assert "s3cr3t" not in str(vars(store).get("name"))


def test_a_secret_written_in_the_config_is_refused_with_what_to_write_instead():
    with pytest.raises(StoreConfigError, match="name the variable in key_env") as error:
        make_store({**SWIFT, "key": "hunter2"}, environ={})
    assert "hunter2" not in str(error.value)


def test_an_unset_variable_is_named_but_nothing_else_leaks():
    with pytest.raises(StoreConfigError, match="DOPPEL_SWIFT_KEY .named by key_env. is not set"):
        make_store(SWIFT, environ={})


@pytest.mark.parametrize("spec, field", [
    ({"type": "swift", "container": "b"}, "auth_url"),
    ({**SWIFT, "cloud": "dr"}, "auth_url"),
    ({"type": "s3", "bucket": "b-1", "part_size": "1MiB"}, "part_size"),
    ({"type": "s3", "bucket": "b-1", "access_key": "AK"}, "secret_key_env"),
    ({"type": "local"}, "path"),
    ({"type": "ftp"}, "type"),
    ({**SWIFT, "segment_size": "lots"}, "segment_size"),
])
def test_invalid_configurations_name_the_field(spec, field):
    with pytest.raises(StoreConfigError, match=field):
        make_store(spec, environ={"DOPPEL_SWIFT_KEY": "k"})


def test_keystone_needs_only_a_cloud_name():
    store = make_store({"type": "swift", "container": "backups", "cloud": "dr-region", "region_name": "RegionTwo"},
                       environ={})
    assert isinstance(store, SwiftStore) and "dr-region" in repr(store)
