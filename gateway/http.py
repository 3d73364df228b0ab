"""What a route handler sees and returns: a request read whole, a response, and a refusal.

Kept free of http.server so each route is a plain function of a Request.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

JSON = "application/json"
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
        """The body as JSON; Refused(400) when it is not."""
        try:
            return json.loads(self.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Refused(400, "malformed", f"the body is not JSON: {exc}",
                          "send a JSON object with Content-Type: application/json") from None

    def form(self) -> dict[str, str]:
        """The body as an HTML form (what Slack and Mattermost slash commands send); last value wins."""
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
