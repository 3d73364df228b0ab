"""Validate an `X-Auth-Token` with Keystone, as Aodh's trust+http actions send one.

`GET /v3/auth/tokens` with the gateway's own token in `X-Auth-Token` and the
caller's in `X-Subject-Token`: 200 means valid (the body says for which project,
with which roles), 404 means not valid. The gateway's own token is either given
(`token_env`) or obtained with a password and renewed before it expires.
Tokens Keystone accepted are remembered (by hash, never in clear) for `cache` seconds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

from core.errors import ConfigError
from gateway.http import Refused

log = logging.getLogger(__name__)
RENEW_BEFORE_S = 120  # get a new service token this long before the old one expires
MAX_CACHED = 1024


def v3_url(auth_url: str) -> str:
    """The identity v3 base URL, whether the configuration wrote `.../v3` or the bare endpoint."""
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


def _expiry(body: dict) -> float:
    """Seconds since the epoch at which a token body says it expires (now + 1 h when it does not say).

    Keystone writes UTC, but without the `Z` for some tokens (an application credential's): a time
    without a zone is UTC here, never the gateway host's local time."""
    text = (body.get("token") or {}).get("expires_at")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return time.time() + 3600
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class KeystoneTokens:
    def __init__(self, settings: dict, environ=os.environ, clock=time.time):
        self.settings, self.clock = settings, clock
        self.base = v3_url(settings["auth_url"])
        self._given = environ.get(settings["token_env"], "") if settings.get("token_env") else ""
        self._password = environ.get(settings["password_env"], "") if settings.get("password_env") else ""
        if settings.get("token_env") and not self._given:
            raise ConfigError(f"gateway.aodh.keystone.token_env names {settings['token_env']}, which is unset or "
                              "empty; export it with the gateway's service token")
        if not self._given and not self._password:
            raise ConfigError(f"gateway.aodh.keystone.password_env names {settings.get('password_env')}, which is "
                              "unset or empty; export it with the service user's password")
        self._lock = threading.Lock()
        self._service: tuple[str, float] | None = None  # (token, expires at)
        self._accepted: dict[str, tuple[float, dict]] = {}  # sha256 of a token -> (trusted until, its body)

    # -- the caller's token ----------------------------------------------------------
    def check(self, token: str) -> dict:
        """The token's body when Keystone accepts it and the policy allows it; Refused(401/503) otherwise."""
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._accepted.get(key)
        if cached and cached[0] > self.clock():
            return cached[1]
        body = self._validate(token)
        self._allow(body)
        until = min(self.clock() + self.settings["cache"], _expiry({"token": body}))
        with self._lock:
            if len(self._accepted) >= MAX_CACHED:
                self._accepted.clear()
            self._accepted[key] = (until, body)
        return body

    def _validate(self, token: str, renewed: bool = False) -> dict:
        status, body, _ = self._call("GET", "/auth/tokens",
                                     {"X-Auth-Token": self._service_token(), "X-Subject-Token": token})
        if status == 200:
            return body.get("token") or {}
        if status == 404:
            raise Refused(401, "bad_keystone_token", "Keystone does not know this X-Auth-Token, or it expired",
                          "the alarm's trust may have been deleted; recreate the alarm action")
        if status == 401 and not renewed and self._password:
            with self._lock:
                self._service = None  # our own token was revoked: get a new one, once
            return self._validate(token, renewed=True)
        raise Refused(503, "keystone_unavailable", f"Keystone answered {status} when asked about a token",
                      "check gateway.aodh.keystone (the service credentials and auth_url)")

    def _allow(self, body: dict) -> None:
        """The configured policy: the token's project among `allowed_projects`, and every `required_roles`."""
        project = (body.get("project") or {}).get("id")
        allowed = self.settings["allowed_projects"]
        if allowed and project not in allowed:
            raise Refused(401, "keystone_project", f"tokens of project {project} are not accepted",
                          "add the project id to gateway.aodh.keystone.allowed_projects")
        roles = {role.get("name") for role in body.get("roles") or []}
        missing = [role for role in self.settings["required_roles"] if role not in roles]
        if missing:
            raise Refused(401, "keystone_roles", f"the token lacks role(s) {', '.join(missing)}",
                          "grant them to the alarm's user, or change gateway.aodh.keystone.required_roles")

    # -- the gateway's own token ---------------------------------------------------
    def _service_token(self) -> str:
        if self._given:
            return self._given
        with self._lock:
            if self._service and self._service[1] - RENEW_BEFORE_S > self.clock():
                return self._service[0]
        token, expires = self._password_login()
        with self._lock:
            self._service = (token, expires)
        return token

    def _password_login(self) -> tuple[str, float]:
        s = self.settings
        auth = {"identity": {"methods": ["password"], "password": {"user": {
            "name": s.get("username"), "domain": {"name": s["user_domain"]}, "password": self._password}}}}
        if s.get("project"):
            auth["scope"] = {"project": {"name": s["project"], "domain": {"name": s["project_domain"]}}}
        status, body, headers = self._call("POST", "/auth/tokens", {"Content-Type": "application/json"},
                                           json.dumps({"auth": auth}).encode())
        token = headers.get("x-subject-token")
        if status != 201 or not token:
            raise Refused(503, "keystone_unavailable", f"the gateway could not log in to Keystone (status {status})",
                          "check gateway.aodh.keystone.username, project and the password variable")
        return token, _expiry(body)

    def _call(self, method: str, path: str, headers: dict, data: bytes | None = None):
        """(status, JSON body or {}, lower-case headers); Refused(503) when Keystone cannot be reached."""
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.settings["timeout"]) as response:
                return response.status, _json(response.read()), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            return exc.code, {}, {}
        except OSError as exc:
            log.warning("Keystone at %s did not answer: %s", self.base, exc)
            raise Refused(503, "keystone_unavailable", "Keystone did not answer; the token cannot be checked",
                          f"check that {self.base} is reachable from the gateway") from None


def _json(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
