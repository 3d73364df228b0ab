"""Fixtures for the cloud driver tests: a made-up production on disk and a local driver over it."""
from __future__ import annotations

from pathlib import Path

import pytest

from clouds.local import LocalDriver
from clouds.local.sample import make_sample_production
from clouds.rewrite import new_secrets


@pytest.fixture
def production(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "prod" / "shop"
    return root, make_sample_production(root, rows=60)


@pytest.fixture
def driver(tmp_path, production) -> LocalDriver:
    return LocalDriver(tmp_path / "state", {"shop": production[1]})


@pytest.fixture
def make_env(driver, production):
    """snapshot -> create_stack -> configure, as the chain does; returns (snapshot, stack, endpoints, secrets)."""
    def make(env: str, key: str | None = None, policy=None, target: LocalDriver | None = None):
        cloud = target or driver
        key = key or f"request:{env}"
        snapshot = cloud.snapshot("shop", env, key)
        stack = cloud.create_stack(env, snapshot, {}, key)
        secrets = new_secrets(production[1]["clone"]["secrets"])
        endpoints = cloud.configure(env, stack, policy, secrets)
        return snapshot, stack, endpoints, secrets
    return make

