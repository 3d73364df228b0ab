"""Errors to Sentry when SENTRY_DSN is set, with every secret value scrubbed before sending."""
from __future__ import annotations

import logging
import os

from core.secrets import scrub, secret_values

log = logging.getLogger(__name__)
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
