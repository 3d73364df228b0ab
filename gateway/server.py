"""The HTTP server around the routes: waitress (the Pylons project's production WSGI server) serving the Flask
app of gateway/web.py.

Waitress reads each request whole, in its I/O thread, before a worker thread runs
the app: a slow client holds no thread. It frames bodies strictly (a Content-Length
of digits only, given once; chunked with hexadecimal sizes; any other
Transfer-Encoding refused) and refuses a body over `gateway.max_body` as soon as its
length is known. This module changes four things through waitress's own classes:

- its refusals are JSON, in the words of every other refusal (`{"error", "fix"}`),
  and a Transfer-Encoding it does not read is a 400, not a 501;
- the request line is at most 64 KiB (414), the headers at most 100 (431), and the
  version HTTP/1.0 or 1.1 (400; HTTP/2 and later 505);
- a client that closes its side inside a request gets a 400 saying where it stopped,
  instead of a silent close;
- once a request has begun it must arrive at the pace of a client that has it all:
  a pause of `gateway.read_timeout` in its headers or body is a 408 (in its request
  line, a close). An idle connection may wait IDLE_TIMEOUT_S for its next request.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import BadRequest, Error

log = logging.getLogger("doppel.gateway")
IDLE_TIMEOUT_S = 30  # how long a connection may wait idle for its next request
MAX_LINE = 65536  # bytes of the request line
MAX_HEADERS = 100  # header lines
MAX_HEAD = 4 * 65536 + MAX_LINE  # the request line and every header together
THREADS = 8  # requests served at once; each may wait `publish_timeout` for the broker
_FRAMING_FIX = "send the body once, with one Content-Length that is its size in bytes, or chunked"
_PAUSE_FIX = "send each request whole, without pausing; a Content-Length must be the body's size in bytes"
_LINE_FIX = "send a request line of three parts, `METHOD /path HTTP/1.1`, then the headers and an empty line"
# What waitress says (the start of its message) -> (status, metrics reason, what went wrong, what to do)
_WAITRESS_WORDS = (
    ("Content-Length is too large", 413, "too_large", "the body is over {max_body} bytes",
     "send less, or raise gateway.max_body"),
    ("Content-Length is invalid", 400, "length", "Content-Length is not one number of bytes", _FRAMING_FIX),
    ("framing: both", 400, "framing", "the request has both Transfer-Encoding and Content-Length", _FRAMING_FIX),
    ("Transfer-Encoding", 400, "framing", "only Transfer-Encoding: chunked is read here",
     "send the body with Content-Length, or Transfer-Encoding: chunked alone"),
    ("Invalid chunk", 400, "malformed", "a chunk size is not a hexadecimal number", _FRAMING_FIX),
    ("Chunk not properly terminated", 400, "malformed", "a chunk does not end where its size says", _FRAMING_FIX),
    ("request line over", 414, "protocol", f"the request line is over {MAX_LINE // 1024} KiB",
     "send a shorter path and query"),
    ("headers over", 431, "protocol", f"the headers are too many (over {MAX_HEADERS}) or too long",
     "send fewer and shorter headers"),
    ("request line without", 400, "protocol", "the request line is not `METHOD /path HTTP/1.1`", _LINE_FIX),
    ("HTTP version", 505, "protocol", "only HTTP/1.0 and HTTP/1.1 are spoken here", "send HTTP/1.1"),
    ("exceeds max_header", 431, "protocol", f"the request line and headers are over {MAX_HEAD // 1024} KiB",
     "send fewer and shorter headers"),
    ("exceeds max_body", 413, "too_large", "the body is over {max_body} bytes; at most {max_body} are accepted",
     "send less, or raise gateway.max_body"),
)


class _Paused(Error):
    code, reason = 408, "Request Timeout"


class _EndedShort(BadRequest):
    """The client closed its side inside a request."""


class _Parser(HTTPRequestParser):
    """Waitress's parser, with the limits and versions of the gateway (see the module docstring)."""

    def parse_header(self, header_plus: bytes) -> None:
        lines = header_plus.split(b"\r\n")
        if len(lines[0]) > MAX_LINE:
            raise ParsingError(f"request line over {MAX_LINE} bytes")
        if len(lines) - 1 > MAX_HEADERS:
            raise ParsingError(f"headers over {MAX_HEADERS}")
        _check_framing([line.partition(b":") for line in lines[1:]])
        try:
            super().parse_header(header_plus)
        except ParsingError:
            raise
        except ValueError:  # urlsplit's, of a target such as `http://[::1/x`
            raise ParsingError("Bad URI") from None
        if self.version not in ("1.0", "1.1"):
            raise ParsingError("HTTP version" if self.version else "request line without HTTP/1.x")


def _check_framing(headers: list[tuple[bytes, bytes, bytes]]) -> None:
    """ParsingError when the body is framed more than one way, since a server and a proxy that read it
    differently would split requests in different places (waitress lets Transfer-Encoding win)."""
    names = [name.strip().lower() for name, _, _ in headers]
    codings = [value for (_, _, value), name in zip(headers, names) if name == b"transfer-encoding"]
    if codings and b"content-length" in names:
        raise ParsingError("framing: both Transfer-Encoding and Content-Length")
    if len(codings) > 1 or b"," in b"".join(codings):
        raise ParsingError("Transfer-Encoding: more than one coding")
    for (_, _, value), name in zip(headers, names):
        if name == b"content-length" and len(value.strip().lstrip(b"0")) > 18:  # no body is that long
            raise ParsingError("Content-Length is too large")


class _JsonRefusal(ErrorTask):
    """Waitress's refusal of a request it could not read, as JSON, with the connection closed."""

    def execute(self) -> None:
        server = self.channel.server
        status, reason, what, fix = explained(self.request.error, server.gateway.settings["max_body"])
        self.status = f"{status} {HTTPStatus(status).phrase}"
        document = {"error": what, "fix": fix}
        body = json.dumps(document).encode() + b"\n"
        self.response_headers.extend([("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body if getattr(self.request, "command", "") != "HEAD" else b"")
        server.gateway.refused_early(reason)
        log.warning("gateway: %d %s from %s", status, what, self.channel.addr[0] if self.channel.addr else "-")


def explained(error: Error, max_body: int) -> tuple[int, str, str, str]:
    """(status, metrics reason, what went wrong, what to do) for one of waitress's refusals."""
    if isinstance(error, _Paused):
        return 408, "timeout", error.body, _PAUSE_FIX
    if isinstance(error, _EndedShort):
        return 400, "length", error.body, _FRAMING_FIX
    message = str(error.body)
    for start, status, reason, what, fix in _WAITRESS_WORDS:
        if message.startswith(start) or start in message:
            return status, reason, what.format(max_body=max_body), fix
    if error.code >= 500:  # anything else waitress could not read is the request's fault, not ours
        return 400, "protocol", "the request could not be read as HTTP/1.1", _LINE_FIX
    return error.code, "protocol", "the request line or a header is not HTTP/1.1", _LINE_FIX


class _Channel(HTTPChannel):
    error_task_class = _JsonRefusal
    parser_class = _Parser

    def begun(self) -> bool:
        """Whether part of a request has arrived (and not yet all of it)."""
        request = self.request
        return request is not None and bool(request.header_plus or request.headers_finished)

    def in_request_line(self) -> bool:
        return not self.request.headers_finished and b"\n" not in self.request.header_plus

    def handle_read(self) -> None:
        """As waitress's, except that a client closing its side inside a request is answered 400."""
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except BlockingIOError:
            return
        except OSError:
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        elif self.begun():
            self.refuse(_EndedShort(self._ended_where()))
        else:
            self.handle_close()

    def _ended_where(self) -> str:
        request = self.request
        if not request.headers_finished:
            return "the request ended inside its headers"
        if request.chunked:
            return "the body ended inside a chunk"
        received = request.body_rcv.__len__() if request.body_rcv is not None else 0
        return f"the body ended after {received} of the {request.content_length} bytes its Content-Length announced"

    def refuse(self, error: Error) -> None:
        """Answer the request being read with `error` (and close), as waitress does a request it cannot read."""
        with self.requests_lock:
            request, self.request = self.request, None
            if request is None:
                return
            request.error, request.completed = error, True
            self.requests.append(request)
            if len(self.requests) == 1:
                self.server.add_task(self)


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, application, gateway, adj: Adjustments):
        self.gateway = gateway
        super().__init__(application, adj=adj)

    def maintenance(self, now: float) -> None:
        """Idle connections close after IDLE_TIMEOUT_S (waitress's own rule); a request paused halfway is a 408."""
        super().maintenance(now)
        cutoff = now - self.gateway.settings["read_timeout"]
        for channel in list(self.active_channels.values()):
            if channel.requests or not channel.begun() or channel.last_activity >= cutoff:
                continue
            if channel.in_request_line():
                channel.will_close = True  # no request to answer yet: close, as for a client gone quiet
            else:
                what = "headers" if not channel.request.headers_finished else "body"
                channel.refuse(_Paused(f"the {what} stopped arriving: nothing came for "
                                       f"{self.gateway.settings['read_timeout']:g} s"))


class GatewayServer:
    """The gateway listening on (host, port); port 0 picks a free one (see `.port`)."""

    def __init__(self, gateway, host: str, port: int):
        from gateway.web import build_app
        self.gateway = gateway
        settings = gateway.settings
        tick = min(0.1, settings["read_timeout"] / 4)
        adj = Adjustments(host=host, port=port, threads=THREADS, ident="doppel-gateway",
                          channel_timeout=IDLE_TIMEOUT_S, max_request_header_size=MAX_HEAD,
                          max_request_body_size=settings["max_body"] + 1, expose_tracebacks=False,
                          log_socket_errors=False, clear_untrusted_proxy_headers=False)
        adj.cleanup_interval = tick  # waitress takes whole seconds from its options; the 408 needs less
        self._tick = tick
        self._httpd = _Server(build_app(gateway), gateway, adj)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.effective_port

    @property
    def url(self) -> str:
        return f"http://{self._httpd.effective_host}:{self.port}"

    def start(self) -> "GatewayServer":
        self._thread = threading.Thread(target=self._serve, name="doppel-gateway", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        wasyncore.loop(timeout=self._tick, map=self._httpd._map, use_poll=True)

    def stop(self) -> None:
        """Close every connection in the I/O thread and end its loop, then close the listening socket and the
        trigger here, then let running requests end.

        The trigger is not closed in the I/O thread: a wake-up already pending there may run `close_all`
        before `pull_trigger` has written its own byte, which then finds the trigger closed (EBADF)."""
        def close_all() -> None:
            for channel in list(self._httpd.active_channels.values()):
                channel.handle_close()
            self._httpd._map.clear()  # the loop ends once its map is empty

        self._httpd.trigger.pull_trigger(close_all)
        if self._thread:
            self._thread.join(timeout=10)
        self._httpd.close()
        self._httpd.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
