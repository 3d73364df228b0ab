"""The HTTP server around the routes: standard library ThreadingHTTPServer, one thread per connection.

It reads a request whole (refusing bodies over `gateway.max_body` before reading
them), hands it to the Gateway, writes the answer, and logs one line per request
with the Aodh hook's secret masked out of the path.
"""
from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gateway.http import Refused, Request, Response, masked

log = logging.getLogger("doppel.gateway")
DRAIN_FACTOR = 4  # a body up to 4x the limit is read and dropped before the 413
SOCKET_TIMEOUT_S = 30  # a client that stops sending mid-request frees its thread after this


def loggable(path: str) -> str:
    """The request path without the Aodh hook's secret and without the query string."""
    return masked(urlsplit(path).path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, gateway):
        self.gateway = gateway
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "doppel-gateway"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def do_HEAD(self):
        self._serve(head=True)

    def _serve(self, head: bool = False) -> None:
        started = time.monotonic()
        gateway = self.server.gateway
        url = urlsplit(self.path)
        body = None
        try:
            route, params = gateway.match("GET" if head else self.command, url.path)
            wants_body = self.command in ("POST", "PUT", "PATCH") or self._has_body()
            body = self._read_body(gateway.settings["max_body"]) if wants_body else b""
            request = Request(self.command, url.path, {k.lower(): v for k, v in self.headers.items()}, body,
                              {k: v[-1] for k, v in parse_qs(url.query).items()}, params)
            response = gateway.handle(route, request)
        except Refused as refusal:
            response = gateway.refused(refusal)
            if body is None and self._has_body():
                self.close_connection = True  # the unread body must not be taken for the next request
        except Exception:  # noqa: BLE001 - one bad request must not take the server down
            log.exception("gateway: %s %s failed", self.command, loggable(self.path))
            response = Response.json(500, {"error": "the gateway failed on this request; its log says why"})
        self._write(response, head)
        log.info("%s %s %s %d %.1f ms", self.client_address[0], self.command, loggable(self.path),
                 response.status, (time.monotonic() - started) * 1000)

    def _has_body(self) -> bool:
        return self.headers.get("Content-Length", "0") not in ("", "0") or "Transfer-Encoding" in self.headers

    def _read_body(self, limit: int) -> bytes:
        """The body, at most `limit` bytes: Content-Length or chunked; Refused(411/413) otherwise."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            raise Refused(411, "length", "Content-Length is required", "send the body with its length")
        try:
            length = int(length)
        except ValueError:
            raise Refused(400, "length", "Content-Length is not a number") from None
        if length > limit:
            self._discard(length, limit)
            raise Refused(413, "too_large", f"the body is {length} bytes; at most {limit} are accepted",
                          "send less, or raise gateway.max_body")
        return self.rfile.read(length)

    def _discard(self, length: int, limit: int) -> None:
        """Read and drop a too-large body when it is at most DRAIN_FACTOR times the limit, so the client
        (still sending) reads the 413 instead of a connection reset; larger ones are cut off unread."""
        if length > DRAIN_FACTOR * limit:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)

    def _read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise Refused(400, "malformed", "a chunk size is not hexadecimal") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: ignored
                return bytes(body)
            if len(body) + size > limit:
                self.close_connection = True
                raise Refused(413, "too_large", f"the body is over {limit} bytes",
                              "send less, or raise gateway.max_body")
            body += self.rfile.read(size)
            self.rfile.readline()

    def _write(self, response: Response, head: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        """http.server's own lines (they carry the raw path, secret and all) go nowhere; _serve logs instead."""

    def log_error(self, format, *args):  # noqa: A002
        log.warning("gateway: %s from %s", (format % args).split(":")[0], self.client_address[0])


class GatewayServer:
    """The gateway listening on (host, port); port 0 picks a free one (see `.port`)."""

    def __init__(self, gateway, host: str, port: int):
        self.gateway = gateway
        self._httpd = _Server((host, port), gateway)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> "GatewayServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="doppel-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=10)
