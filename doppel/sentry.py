"""Errors to Sentry when SENTRY_DSN is set, with every secret value scrubbed before sending.

Secrets reach Doppel only through environment variables, so the scrubber knows
them all: it replaces each such value wherever it appears in an outgoing Sentry
event (message, tags, extra, breadcrumbs, stack locals), and masks fields whose
names say they hold a secret.
"""
from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
MASK = "[redacted]"
_SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api_?key|private_?key|credential|dsn|auth|_key$)", re.I)
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def secret_values(environ=os.environ) -> set[str]:
    """Values of environment variables that hold secrets, and passwords inside URLs."""
    values = set()
    for name, value in environ.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) or name in ("DOPPEL_AMQP_URL", "DOPPEL_DB_URL"):
            values.add(value)
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                values.add(password)
    return {v for v in values if len(v) >= _MIN_SECRET_LEN}


def scrub(node, secrets: set[str], key: str = ""):
    """A copy of `node` with secret values replaced and secret-named fields masked."""
    if isinstance(node, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_NAME.search(k) and isinstance(v, (str, int, float))
                    and not isinstance(v, bool) else scrub(v, secrets, k))
                for k, v in node.items()}
    if isinstance(node, list):
        return [scrub(v, secrets, key) for v in node]
    if isinstance(node, tuple):
        return tuple(scrub(v, secrets, key) for v in node)
    if isinstance(node, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in node:
                node = node.replace(secret, MASK)
        return node
    return node


def init_sentry(role: str, environment: str = "production", release: str | None = None) -> bool:
    """Initialise sentry-sdk for this process when SENTRY_DSN is set; True when it was."""
    dsn = os.environ.get("SENTRY_DSN")
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    def before_send(event, hint):
        return scrub(event, secret_values())

    sentry_sdk.init(dsn=dsn, environment=environment, release=release, before_send=before_send,
                    before_breadcrumb=lambda crumb, hint: scrub(crumb, secret_values()),
                    send_default_pii=False, include_local_variables=False,
                    # Log lines stay breadcrumbs: the reporter sends each problem exactly once.
                    integrations=[LoggingIntegration(event_level=None)])
    sentry_sdk.set_tag("role", role)
    return True


class SentryReporter:
    """The worker's Reporter: logs, and sends one Sentry event per report when Sentry is on."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def report(self, message: str, *, tags: dict, error: BaseException | None = None) -> None:
        secrets = secret_values()
        log.error("%s", scrub(message, secrets))
        if not self.enabled:
            return
        import sentry_sdk
        with sentry_sdk.new_scope() as scope:
            for name, value in tags.items():
                scope.set_tag(name, scrub(str(value), secrets))
            scope.set_extra("detail", scrub(message, secrets))
            if error is not None:
                scope.fingerprint = ["{{ default }}", tags.get("function", "")]
                sentry_sdk.capture_exception(error)
            else:
                sentry_sdk.capture_message(scrub(message, secrets), level="error")
