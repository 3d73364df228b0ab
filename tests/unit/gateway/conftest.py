import pytest

from tests.support.gateway import Front, embedded_gateway_env


@pytest.fixture
def front(tmp_path, monkeypatch):
    embedded_gateway_env(monkeypatch)
    running = Front(tmp_path)
    yield running
    running.close()
