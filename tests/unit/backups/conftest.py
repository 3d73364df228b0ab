"""Fixtures for the backup tests: an environment on disk and a directory store."""
from __future__ import annotations

import pytest

from clouds.stores.local import LocalStore
from core.cloud import BackupSource

from .environment import make_environment


@pytest.fixture
def environment(tmp_path) -> BackupSource:
    return make_environment(tmp_path / "prod")


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")
