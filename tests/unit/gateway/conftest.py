import pytest

from tests.support.gateway import SECRETS, Front


@pytest.fixture
def front(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    running = Front(tmp_path)
    yield running
    running.close()
