"""The Designate provider through openstacksdk's real request layer, against a loopback stand-in for Designate's API.

The stand-in answers the Designate v2 calls the provider makes as the API reference
describes them (version document, zone list by name, recordset list by name and
type, POST and PUT answered 202 with status PENDING, GET of one recordset, DELETE),
and records every request. What this proves: the URLs, query strings and bodies the
SDK sends for the provider's calls, and how its replies and errors come back. What
it does not prove: that a real Designate answers the same (docs/dns.md).
"""
from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import openstack
import pytest

from clouds.dns.designate import DesignateProvider
from core.cloud import DnsRecord
from core.dns import DnsError

SHOP = "shop.example.com"


class DesignateApi:
    """Zone example.com. and its recordsets, in memory; `requests` logs (method, path, query, body)."""

    def __init__(self):
        self.recordsets: dict[str, dict] = {}
        self.requests: list[tuple] = []
        self.ids = itertools.count(1)
        self.refuse_writes_with: int | None = None

    def handle(self, method: str, url: str, body: dict | None, base: str) -> tuple[int, dict]:
        path, query = urlsplit(url).path.rstrip("/"), {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        self.requests.append((method, path, query, body))
        if path in ("", "/v2"):
            return 200, {"versions": {"values": [{"id": "v2", "status": "CURRENT",
                                                  "links": [{"rel": "self", "href": base + "/v2/"}]}]}}
        if path == "/v2/zones":
            zones = [{"id": "z1", "name": "example.com.", "ttl": 3600}]
            return 200, {"zones": [z for z in zones if query.get("name") in (None, z["name"])], "links": {}}
        if method != "GET" and self.refuse_writes_with:
            return self.refuse_writes_with, {"code": self.refuse_writes_with, "message": "not allowed by policy"}
        if path == "/v2/zones/z1/recordsets":
            return self._list(query) if method == "GET" else self._create(body)
        if path.startswith("/v2/zones/z1/recordsets/") and path.rsplit("/", 1)[1] in self.recordsets:
            return self._one(method, path.rsplit("/", 1)[1], body)
        return 404, {"code": 404, "type": "not_found", "message": f"no {path}"}

    def _list(self, query):
        found = [r for r in self.recordsets.values() if all(r.get(k) == v for k, v in query.items())]
        return 200, {"recordsets": found, "links": {}}

    def _create(self, body):
        recordset = {**body, "id": f"rs{next(self.ids)}", "zone_id": "z1", "status": "PENDING"}
        self.recordsets[recordset["id"]] = recordset
        return 202, recordset

    def _one(self, method, recordset_id, body):
        recordset = self.recordsets[recordset_id]
        if method == "PUT":
            recordset.update(body, status="PENDING")
        elif method == "DELETE":
            del self.recordsets[recordset_id]
            return 202, {**recordset, "action": "DELETE"}
        else:
            recordset["status"] = "ACTIVE"  # pushed to the DNS servers by the time anyone looks
        return (202 if method == "PUT" else 200), dict(recordset)


@pytest.fixture
def api():
    api = DesignateApi()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, reply = api.handle(self.command, self.path, body, base)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.connection = openstack.connect(auth_type="none", auth={"endpoint": base}, dns_endpoint_override=base,
                                       load_yaml_config=False, load_envvars=False)
    yield api
    server.shutdown()
    server.server_close()


def provider_on(api) -> DesignateProvider:
    return DesignateProvider(api.connection, "example.com", cloud="stand-in", poll_seconds=0, sleep=lambda s: None)


def writes(api) -> list[tuple]:
    return [(m, p, b) for m, p, q, b in api.requests if m in ("POST", "PUT", "DELETE")]


def test_a_new_name_is_one_post_of_an_absolute_name_with_records_and_ttl(api):
    previous = provider_on(api).switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert previous is None
    assert writes(api) == [("POST", "/v2/zones/z1/recordsets",
                            {"name": "shop.example.com.", "type": "A", "records": ["203.0.113.20"], "ttl": 60})]
    assert ("GET", "/v2/zones/z1/recordsets", {"name": "shop.example.com.", "type": "A"}, None) in api.requests


def test_a_switch_is_one_put_of_the_recordset_and_waits_for_active(api):
    provider = provider_on(api)
    provider.switch(DnsRecord(SHOP, "A", "203.0.113.10", 300))
    api.requests.clear()

    previous = provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert previous == DnsRecord(SHOP, "A", "203.0.113.10", 300)
    assert writes(api) == [("PUT", "/v2/zones/z1/recordsets/rs1", {"records": ["203.0.113.20"], "ttl": 60})]
    assert ("GET", "/v2/zones/z1/recordsets/rs1", {}, None) in api.requests
    assert provider.get(SHOP) == DnsRecord(SHOP, "A", "203.0.113.20", 60)


def test_switching_to_the_current_value_writes_nothing(api):
    provider = provider_on(api)
    provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))
    api.requests.clear()

    provider.switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert writes(api) == []


def test_a_refusal_by_policy_is_a_permanent_error_that_says_so(api):
    api.refuse_writes_with = 403

    with pytest.raises(DnsError, match="HTTP 403") as error:
        provider_on(api).switch(DnsRecord(SHOP, "A", "203.0.113.20", 60))

    assert error.value.permanent and api.recordsets == {}


def test_delete_is_one_delete_of_the_recordset(api):
    provider = provider_on(api)
    provider.switch(DnsRecord(SHOP, "TXT", "failed over", 60))
    api.requests.clear()

    provider.delete(SHOP, "TXT")
    provider.delete(SHOP, "TXT")

    assert [(m, p) for m, p, b in writes(api)] == [("DELETE", "/v2/zones/z1/recordsets/rs1")]
