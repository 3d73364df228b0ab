"""What a route handler sees and returns: a request read whole, a response, and a refusal.

Kept free of http.server so each route is a plain function of a Request.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_DEPTH = 32  # arrays and objects inside each other; every real payload (Aodh's included) stays under 10
_HOOK_SECRET = re.compile(r"^(/hooks/aodh/)[^/?]+")


def masked(path: str) -> str:
    """A path fit for logs and answers: the Aodh hook's secret replaced, the query string dropped."""
    return _HOOK_SECRET.sub(r"\1[redacted]", path.split("?")[0])


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes = b""
    query: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # captured from the route's path

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case (`application/json; charset=utf-8` -> `application/json`)."""
        return self.header("content-type").split(";")[0].strip().lower()

    def json(self) -> object:
        """The body as JSON; Refused(400) when it is not (see `parse_json`)."""
        return parse_json(self.body or b"null")

    def form(self) -> dict[str, str]:
        """The body as an HTML form (what Slack and Mattermost slash commands send); last value wins.

        Refused(415) when the request says it is something else, or nothing."""
        if self.content_type != FORM:
            raise Refused(415, "media_type", f"a slash command is a form ({FORM}), not "
                          f"{self.content_type or 'a body without Content-Type'}",
                          "send it as Slack and Mattermost do")
        try:
            fields = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise Refused(400, "malformed", "the form body is not UTF-8") from None
        return {name: values[-1] for name, values in fields.items()}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document, headers: dict | None = None) -> "Response":
        return cls(status, json.dumps(document, indent=None, default=str).encode() + b"\n", JSON, headers or {})


class Refused(Exception):
    """A request the gateway will not take: the status, a short reason (a metrics label), and what to do."""

    def __init__(self, status: int, reason: str, message: str, fix: str | None = None,
                 headers: dict | None = None, details: dict | None = None):
        super().__init__(message)
        self.status, self.reason, self.message, self.fix = status, reason, message, fix
        self.headers = headers or {}
        self.details = details or {}

    def response(self) -> Response:
        document = {"error": self.message, **self.details}
        if self.fix:
            document["fix"] = self.fix
        return Response.json(self.status, document, self.headers)


def parse_json(raw: bytes, what: str = "the body") -> object:
    """`raw` as JSON, or Refused(400) saying what is wrong with it: not UTF-8, not JSON, NaN or Infinity
    (not JSON either), a number too long to read, or arrays and objects nested over MAX_DEPTH.

    Nothing that fails here reaches the bus, where it could only be parked; and no parse failure of
    any kind (RecursionError, ValueError) may become a 500.
    """
    fix = "send a JSON object with Content-Type: application/json"
    try:
        document = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise Refused(400, "malformed", f"{what} is nested too deeply to read",
                      f"nest arrays and objects at most {MAX_DEPTH} deep") from None
    except UnicodeDecodeError:
        raise Refused(400, "malformed", f"{what} is not UTF-8 text", fix) from None
    except json.JSONDecodeError as exc:
        raise Refused(400, "malformed", f"{what} is not JSON: {exc}", fix) from None
    except ValueError as exc:  # a number over Python's 4300 digits, or one of ours below
        raise Refused(400, "malformed", f"{what} is not JSON Doppel reads: {_number_error(exc)}", fix) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth_over(document, MAX_DEPTH):
        raise Refused(400, "malformed", f"{what} nests arrays and objects over {MAX_DEPTH} deep",
                      f"nest them at most {MAX_DEPTH} deep")
    return document


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large")
    return number


def _number_error(exc: ValueError) -> str:
    text = str(exc)
    return "a number has over 4300 digits" if "integer string conversion" in text else text


def _depth_over(document, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit`; iterative, so any depth is safe to measure."""
    pending = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
