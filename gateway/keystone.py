"""Validate an `X-Auth-Token` with Keystone, as Aodh's trust+http actions send one, through keystoneauth1.

`GET /v3/auth/tokens` with the gateway's own token in `X-Auth-Token` and the
caller's in `X-Subject-Token`: 200 means valid (the body says for which project,
with which roles), 404 means not valid. keystoneauth1's session holds the gateway's
own token: a given one (`token_env`), or one obtained with a password, renewed
before it expires and once more when Keystone answers 401 (revoked).
Tokens Keystone accepted are remembered (by hash, never in clear) for `cache` seconds.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

from keystoneauth1 import access, session, token_endpoint
from keystoneauth1 import exceptions as keystone_errors
from keystoneauth1.identity import v3

from core.errors import ConfigError
from gateway.http import Refused

log = logging.getLogger(__name__)
MAX_CACHED = 1024


def v3_url(auth_url: str) -> str:
    """The identity v3 base URL, whether the configuration wrote `.../v3` or the bare endpoint."""
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


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
        if self._given:
            plugin = token_endpoint.Token(self.base, self._given)
        else:
            plugin = v3.Password(auth_url=self.base, username=settings.get("username"), password=self._password,
                                 user_domain_name=settings["user_domain"], project_name=settings.get("project"),
                                 project_domain_name=settings["project_domain"] if settings.get("project") else None)
        self._session = session.Session(auth=plugin, timeout=settings["timeout"])
        self._lock = threading.Lock()
        self._accepted: dict[str, tuple[float, object]] = {}  # sha256 of a token -> (trusted until, its access)

    # -- the caller's token ----------------------------------------------------------
    def check(self, token: str):
        """The token's keystoneauth1 AccessInfo when Keystone accepts it and the policy allows it;
        Refused(401/503) otherwise."""
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._accepted.get(key)
        if cached and cached[0] > self.clock():
            return cached[1]
        token_access = self._validate(token)
        self._allow(token_access)
        expires = token_access.expires.timestamp() if token_access.expires else self.clock() + 3600
        until = min(self.clock() + self.settings["cache"], expires)
        with self._lock:
            if len(self._accepted) >= MAX_CACHED:
                self._accepted.clear()
            self._accepted[key] = (until, token_access)
        return token_access

    def _validate(self, token: str):
        try:
            answer = self._session.get(f"{self.base}/auth/tokens", headers={"X-Subject-Token": token},
                                       authenticated=True, raise_exc=False)
        except keystone_errors.Unauthorized:
            raise Refused(503, "keystone_unavailable", "the gateway could not log in to Keystone",
                          "check gateway.aodh.keystone.username, project and the password variable") from None
        except keystone_errors.ClientException as exc:
            log.warning("Keystone at %s did not answer: %s", self.base, type(exc).__name__)
            raise Refused(503, "keystone_unavailable", "Keystone did not answer; the token cannot be checked",
                          f"check that {self.base} is reachable from the gateway") from None
        if answer.status_code == 200:
            try:
                return access.create(body=answer.json(), auth_token=token)
            except (ValueError, KeyError):
                pass
        if answer.status_code == 404:
            raise Refused(401, "bad_keystone_token", "Keystone does not know this X-Auth-Token, or it expired",
                          "the alarm's trust may have been deleted; recreate the alarm action")
        raise Refused(503, "keystone_unavailable", f"Keystone answered {answer.status_code} when asked about a "
                      "token", "check gateway.aodh.keystone (the service credentials and auth_url)")

    def _allow(self, token_access) -> None:
        """The configured policy: the token's project among `allowed_projects`, and every `required_roles`."""
        project = token_access.project_id
        allowed = self.settings["allowed_projects"]
        if allowed and project not in allowed:
            raise Refused(401, "keystone_project", f"tokens of project {project} are not accepted",
                          "add the project id to gateway.aodh.keystone.allowed_projects")
        roles = set(token_access.role_names or ())
        missing = [role for role in self.settings["required_roles"] if role not in roles]
        if missing:
            raise Refused(401, "keystone_roles", f"the token lacks role(s) {', '.join(missing)}",
                          "grant them to the alarm's user, or change gateway.aodh.keystone.required_roles")
