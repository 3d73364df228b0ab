"""The health probe of a restored copy says what is wrong with it: a missing path, a database that fails
integrity_check, a health URL that answers otherwise or not at all; nothing when all is well."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clouds.local.sample import make_sample_production
from clouds.probes import HostProbe
from schemas.dr import DrHealth


def policy(**health) -> dict:
    return {"health": DrHealth().load(health)}


@pytest.fixture
def copy(tmp_path):
    root = tmp_path / "shop"
    return root, make_sample_production(root, rows=20)


def test_a_sound_copy_has_nothing_wrong(copy):
    root, production = copy
    assert HostProbe().files(production, root, policy()) == []


def test_a_missing_path_and_a_damaged_database_are_named(copy):
    root, production = copy
    (database,) = [c["path"] for c in production["components"] if c["kind"] == "sqlite"]
    data = bytearray((root / database).read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the header's tail and the first page's b-tree
    (root / database).write_bytes(bytes(data))

    problems = HostProbe().files(production, root, policy(paths=["app", "nowhere/at-all"]))

    assert len(problems) == 2 and problems[0] == "nowhere/at-all is missing"  # "app" is there
    assert problems[1].startswith(f"{database} fails integrity_check") or \
        problems[1].startswith(f"{database} cannot be opened")


@pytest.fixture
def health_url():
    """A health endpoint on this host answering with the status the test sets."""
    answer = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            self.send_response(answer["status"])
            self.end_headers()

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health", answer
    server.shutdown()
    server.server_close()


def test_the_health_url_must_answer_the_status_expected(health_url):
    url, answer = health_url
    assert HostProbe().http(policy()) == []  # no URL configured: nothing to probe
    assert HostProbe().http(policy(url=url)) == []

    answer["status"] = 503
    assert HostProbe().http(policy(url=url)) == [f"{url} answered 503, not 200"]
    assert HostProbe().http(policy(url=url, expect_status=503)) == []


def test_a_health_url_that_does_not_answer_is_named():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/health"  # bound, not listening: refused
        (problem,) = HostProbe().http(policy(url=url, timeout="2s"))
    assert problem.startswith(f"{url} did not answer")
