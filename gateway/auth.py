"""How each route proves who is calling: a bearer token, Slack's request signature, a Mattermost
token, a secret in Aodh's action URL. Every comparison runs in constant time.

The expected values come from environment variables named in `gateway:`; they are
read once at start-up, and a route whose variable is empty refuses to start.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time

from core.errors import ConfigError
from gateway.http import Refused, Request

SLACK_VERSION = "v0"
_UNIX_TIME = re.compile(r"[0-9]{1,12}")  # seconds; twelve digits reach the year 33658


def same(given: str, expected: str) -> bool:
    """Constant-time equality of two strings (hmac.compare_digest on their UTF-8 bytes)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def read_secrets(settings: dict, environ=os.environ) -> dict[str, str]:
    """The secret of every enabled route, by route: {'events': ..., 'aodh': ..., 'slack': ..., 'mattermost': ...}.

    ConfigError when a configured variable is unset or empty: a route must never run
    with an empty secret, which would let anyone in.
    """
    wanted = {"events": ("events", "token_env"), "aodh": ("aodh", "secret_env"),
              "slack": ("slack", "signing_secret_env"), "mattermost": ("mattermost", "token_env")}
    secrets = {}
    for route, (section, key) in wanted.items():
        variable = (settings.get(section) or {}).get(key)
        if not variable:
            continue
        value = environ.get(variable, "")
        if not value:
            raise ConfigError(f"gateway.{section}.{key} names {variable}, which is unset or empty; "
                              f"export {variable} with the secret, or remove gateway.{section} to disable the route")
        secrets[route] = value
    return secrets


def unauthorized(reason: str, message: str, fix: str, scheme: str | None = None) -> Refused:
    headers = {"WWW-Authenticate": scheme} if scheme else {}
    return Refused(401, reason, message, fix, headers=headers)


def check_bearer(request: Request, expected: str) -> None:
    """`Authorization: Bearer <token>`; Refused(401) unless it matches."""
    scheme, _, token = request.header("authorization").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing_token", "no bearer token", "send Authorization: Bearer <token>",
                           'Bearer realm="doppel"')
    if not same(token.strip(), expected):
        raise unauthorized("bad_token", "the bearer token is not the gateway's",
                           "use the value of the variable named in gateway.events.token_env",
                           'Bearer realm="doppel", error="invalid_token"')


def check_basic(request: Request, expected: str) -> None:
    """`Authorization: Basic` whose password is the token (any user name): what a browser sends for a page."""
    scheme, _, encoded = request.header("authorization").partition(" ")
    try:
        password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[2]
    except (ValueError, UnicodeDecodeError):
        password = ""
    if scheme.lower() != "basic" or not same(password, expected):
        raise unauthorized("bad_token", "the password is not the gateway's token",
                           "log in with any user name and the value of gateway.events.token_env as password",
                           'Basic realm="doppel status"')


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature: `v0=` + hex HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`)."""
    base = f"{SLACK_VERSION}:{timestamp}:".encode() + body
    return f"{SLACK_VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def check_slack(request: Request, secret: str, max_age: float, now: float | None = None) -> None:
    """Slack request signing: a fresh `X-Slack-Request-Timestamp` and a matching `X-Slack-Signature`."""
    stamp, signature = request.header("x-slack-request-timestamp"), request.header("x-slack-signature")
    if not stamp or not signature:
        raise unauthorized("missing_signature", "no Slack signature",
                           "the request must carry X-Slack-Request-Timestamp and X-Slack-Signature")
    if not _UNIX_TIME.fullmatch(stamp):  # int() would take "1_7e9", "-5" or digits too many to subtract
        raise unauthorized("bad_signature", "X-Slack-Request-Timestamp is not a Unix time",
                           "send the request as Slack signs it")
    age = (time.time() if now is None else now) - int(stamp)
    if abs(age) > max_age:
        raise unauthorized("stale_timestamp", f"the request was signed {age:.0f} s from now; "
                           f"at most {max_age:.0f} s are accepted",
                           "check the sending clock; a replayed request is refused by design")
    if not same(signature, slack_signature(secret, stamp, request.body)):
        raise unauthorized("bad_signature", "the Slack signature does not match",
                           "set the variable named in gateway.slack.signing_secret_env to the app's Signing Secret")


def check_mattermost(request: Request, form: dict, expected: str) -> None:
    """The slash command's token: the `token` form field, or `Authorization: Token <token>`."""
    scheme, _, header_token = request.header("authorization").partition(" ")
    token = form.get("token") or (header_token.strip() if scheme.lower() == "token" else "")
    if not token:
        raise unauthorized("missing_token", "no Mattermost token", "configure the slash command in Mattermost; "
                           "it sends its token with every request")
    if not same(token, expected):
        raise unauthorized("bad_token", "the Mattermost token is not the slash command's",
                           "set the variable named in gateway.mattermost.token_env to the command's token")


def check_path_secret(given: str, expected: str) -> None:
    """The secret at the end of Aodh's action URL (`.../hooks/aodh/<secret>`)."""
    if not same(given, expected):
        raise unauthorized("bad_secret", "the secret in the hook URL is not the gateway's",
                           "make the alarm action http(s)://HOST/hooks/aodh/<value of gateway.aodh.secret_env>")
