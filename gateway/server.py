"""The HTTP server around the routes: standard library ThreadingHTTPServer, one thread per connection.

It reads a request whole (refusing bodies over `gateway.max_body` before reading
them), hands it to the Gateway, writes the answer, and logs one line per request
with the Aodh hook's secret masked out of the path.

Every answer is JSON, http.server's own refusals included (a request line or
headers it cannot read: 400, 414, 431, 505). A body must be framed one way only
(one Content-Length of digits, or `Transfer-Encoding: chunked`) and arrive whole:
a body that stops short is a 400 as soon as the client closes its side.

A connection may wait SOCKET_TIMEOUT_S for its next request; once a request has
begun, it must come at the pace of a client that has it all: a pause of
`gateway.read_timeout` in its headers or body is a 408 (in its request line, a
close). Either way the connection is closed, since where the next request would
start is unknown, and no thread is held by a client that stopped halfway.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gateway.http import Refused, Request, Response, masked

log = logging.getLogger("doppel.gateway")
DRAIN_FACTOR = 4  # a body up to 4x the limit is read and dropped before the 413
SOCKET_TIMEOUT_S = 30  # how long a connection may wait idle for its next request (and a slow reader for its answer)
MAX_HEADERS = 100  # http.client's own limit, which a library may raise for the whole process (swiftclient does)
MAX_TRAILERS = 32  # header lines after the last chunk (read and ignored)
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_FRAMING_FIX = "send the body once, with one Content-Length that is its size in bytes, or chunked"
_PAUSE_FIX = "send each request whole, without pausing; a Content-Length must be the body's size in bytes"
# What http.server refuses before a route sees the request, in the words of every other refusal.
_PROTOCOL_ERRORS = {
    HTTPStatus.BAD_REQUEST: ("the request line is not `METHOD /path HTTP/1.1`",
                             "send a request line of three parts, then the headers and an empty line"),
    HTTPStatus.REQUEST_TIMEOUT: ("the headers stopped arriving before their end", _PAUSE_FIX),
    HTTPStatus.REQUEST_URI_TOO_LONG: ("the request line is over 64 KiB", "send a shorter path and query"),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: ("the headers are too many (over 100) or one is over 64 KiB",
                                                 "send fewer and shorter headers"),
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: ("only HTTP/1.0 and HTTP/1.1 are spoken here", "send HTTP/1.1"),
}


def loggable(path: str) -> str:
    """The request path without the Aodh hook's secret and without the query string."""
    try:
        return masked(urlsplit(path).path)
    except ValueError:  # e.g. `http://[::1/x`: an absolute URI urlsplit cannot read
        return masked(path)


def _target(path: str):
    """The request target split into path and query; Refused(400) when it cannot be read as one."""
    try:
        return urlsplit(path)
    except ValueError:
        raise Refused(400, "target", "the request target is not a path", "send /path or /path?query") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, gateway):
        self.gateway = gateway
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        """A client gone before its answer is a line in the log; anything else a logged traceback (not stderr)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.info("gateway: %s went away before its answer", client_address[0])
        else:
            log.exception("gateway: the connection from %s failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "doppel-gateway"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S
    default_request_version = "HTTP/1.0"  # so a refusal of a garbled request line still has a status line

    def __getattr__(self, name: str):
        # http.server answers a method without a `do_<METHOD>` with its own 501; here every method goes
        # to the routes, which answer 405 with Allow (or 404), as for any method a route does not take.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def do_HEAD(self):
        self._serve(head=True)

    def handle_one_request(self) -> None:
        """Wait for a request as long as a connection may idle, then read it at `gateway.read_timeout`."""
        self.connection.settimeout(self.timeout)
        try:
            begun = self.rfile.peek(1)
        except (TimeoutError, ConnectionError):
            begun = b""
        if not begun:
            self.close_connection = True
            return
        self.connection.settimeout(self.server.gateway.settings["read_timeout"])
        super().handle_one_request()  # a pause in the request line: it closes the connection

    def parse_request(self) -> bool:
        try:
            parsed = super().parse_request()
        except TimeoutError:
            self.send_error(HTTPStatus.REQUEST_TIMEOUT, "headers stopped")
            return False
        if not parsed:
            return False
        if len(self.headers) > MAX_HEADERS:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            return False
        if len(self.requestline.split()) < 3:  # HTTP/0.9's `GET /path`: no headers, no status line back
            self.send_error(HTTPStatus.BAD_REQUEST, "no HTTP version")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals as JSON, like every other answer (its own are HTML), with the
        connection closed; its message is not repeated, as it may carry the raw request line."""
        status = HTTPStatus(code)
        what, fix = _PROTOCOL_ERRORS.get(status, (status.phrase, None))
        self.close_connection = True
        log.warning("gateway: %d %s from %s", code, (message or status.phrase).split(" (")[0],
                    self.client_address[0])
        self._write(self.server.gateway.refused(Refused(code, "protocol", what, fix)), self.command == "HEAD")

    def _serve(self, head: bool = False) -> None:
        started = time.monotonic()
        gateway = self.server.gateway
        body = None
        try:
            url = _target(self.path)
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
        lengths = self.headers.get_all("Content-Length") or []
        return lengths not in ([], ["0"]) or "Transfer-Encoding" in self.headers

    def _read_body(self, limit: int) -> bytes:
        """The body, at most `limit` bytes: Content-Length or chunked; Refused(400/408/411/413) otherwise."""
        try:
            if self._framing() == "chunked":
                return self._read_chunked(limit)
            return self._read_length(limit)
        except TimeoutError:
            self.close_connection = True
            raise Refused(408, "timeout", "the body stopped arriving: nothing came for "
                          f"{self.server.gateway.settings['read_timeout']:g} s", _PAUSE_FIX) from None

    def _framing(self) -> str:
        """`chunked` or `length`: how the body is delimited; Refused(400) when that is ambiguous, since a
        server and a proxy that read it differently would split requests in different places."""
        codings = self.headers.get_all("Transfer-Encoding") or []
        if not codings:
            return "length"
        if "Content-Length" in self.headers:
            raise Refused(400, "framing", "the request has both Transfer-Encoding and Content-Length",
                          _FRAMING_FIX)
        if len(codings) > 1 or codings[0].strip().lower() != "chunked":
            raise Refused(400, "framing", f"Transfer-Encoding {', '.join(codings)!r} is not read here",
                          "send the body with Content-Length, or Transfer-Encoding: chunked alone")
        return "chunked"

    def _read_length(self, limit: int) -> bytes:
        lengths = self.headers.get_all("Content-Length")
        if not lengths:
            raise Refused(411, "length", "Content-Length is required", "send the body with its length")
        if len(lengths) > 1:
            raise Refused(400, "length", f"Content-Length is given {len(lengths)} times", _FRAMING_FIX)
        stated = lengths[0].strip()
        if not _DIGITS.fullmatch(stated):
            raise Refused(400, "length", f"Content-Length {stated[:40]!r} is not a number of bytes", _FRAMING_FIX)
        if len(stated.lstrip("0")) > 18:  # no body is that long; int() would refuse the longest ones anyway
            raise Refused(413, "too_large", f"the body is over {limit} bytes", "send less, or raise gateway.max_body")
        length = int(stated)
        if length > limit:
            self._discard(length, limit)
            raise Refused(413, "too_large", f"the body is {length} bytes; at most {limit} are accepted",
                          "send less, or raise gateway.max_body")
        body = self.rfile.read(length)
        if len(body) < length:
            raise Refused(400, "length", f"the body ended after {len(body)} of the {length} bytes its "
                          "Content-Length announced", _FRAMING_FIX)
        return body

    def _discard(self, length: int, limit: int) -> None:
        """Read and drop a too-large body when it is at most DRAIN_FACTOR times the limit, so the client
        (still sending) reads the 413 instead of a connection reset; larger ones are cut off unread."""
        if length > DRAIN_FACTOR * limit:
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    return
                length -= len(chunk)
        except TimeoutError:
            return  # the client stopped sending: it gets the 413 all the same

    def _read_chunked(self, limit: int) -> bytes:
        """A chunked body: sizes in hexadecimal, each chunk followed by CRLF, then trailers (ignored)."""
        body = bytearray()
        while True:
            line = self._line(1024, "a chunk size")
            size_text = line.split(b";")[0].strip()
            if not _HEX.fullmatch(size_text):
                raise Refused(400, "malformed", f"the chunk size {size_text[:20].decode('latin-1')!r} is not "
                              "a hexadecimal number", _FRAMING_FIX)
            size = int(size_text, 16) if len(size_text.lstrip(b"0")) <= 16 else limit + 1
            if size == 0:
                break
            if len(body) + size > limit:
                raise Refused(413, "too_large", f"the body is over {limit} bytes",
                              "send less, or raise gateway.max_body")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise Refused(400, "malformed", "the body ended inside a chunk", _FRAMING_FIX)
            body += chunk
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise Refused(400, "malformed", f"a chunk does not end where its size ({size:x}) says",
                              _FRAMING_FIX)
        for _ in range(MAX_TRAILERS + 1):
            if self._line(65536, "the trailers") in (b"\r\n", b"\n"):
                return bytes(body)
        raise Refused(400, "malformed", f"over {MAX_TRAILERS} trailer lines after the last chunk", _FRAMING_FIX)

    def _line(self, limit: int, what: str) -> bytes:
        """One line of the chunked framing, with its line end; Refused(400) when it is cut off or too long."""
        line = self.rfile.readline(limit + 1)
        if not line.endswith(b"\n"):
            raise Refused(400, "malformed", f"the body ended inside {what}" if len(line) <= limit
                          else f"a line of {what} is over {limit} bytes", _FRAMING_FIX)
        return line

    def _write(self, response: Response, head: bool) -> None:
        self.connection.settimeout(self.timeout)  # the answer goes at the client's pace
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
