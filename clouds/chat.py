"""Sending a line of text to chat: Slack and Mattermost incoming webhooks speak the same JSON."""
from __future__ import annotations

import json
import logging
import os
import urllib.request
from urllib.parse import urlsplit

log = logging.getLogger("doppel.notify")


def send_to_chat(text: str, settings: dict, timeout: float = 10.0) -> int:
    """Log `text` and post it to every configured webhook; returns how many accepted it.

    `settings` is the `notify:` section: `webhooks: [{url_env: DOPPEL_SLACK_WEBHOOK}]`.
    A webhook that fails is logged, not raised: a chat outage must not fail a chain.
    """
    log.info("%s", text)
    sent = 0
    for hook in settings.get("webhooks", []):
        url = os.environ.get(hook.get("url_env", ""))
        if not url:
            log.warning("notify: webhook variable %s is not set; skipped", hook.get("url_env"))
            continue
        request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                sent += 200 <= response.status < 300
        except OSError as exc:
            log.warning("notify: webhook %s did not accept the message: %s", hook.get("url_env"), exc)
    return sent


def reply_to_command(response_url: str, text: str, timeout: float = 10.0) -> bool:
    """Post `text` to a slash command's response URL (Slack and Mattermost take the same JSON); True if accepted.

    Only the person who typed the command sees it (ephemeral). The URL is a credential
    of sorts (anyone holding it may post), so it is never logged; a failure is logged, not raised.
    """
    if urlsplit(response_url).scheme not in ("http", "https"):
        log.warning("notify: the chat command's reply address is not an http(s) URL; not answered")
        return False
    body = json.dumps({"response_type": "ephemeral", "text": text}).encode()
    request = urllib.request.Request(response_url, data=body, headers={"Content-Type": "application/json"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.warning("notify: the chat command's response URL did not accept the answer: %s",
                    getattr(exc, "reason", None) or type(exc).__name__)
        return False


class WebhookChat:
    """The ChatClient of deps: the `notify:` section's webhooks, and slash commands' reply addresses."""

    def __init__(self, settings: dict, timeout: float = 10.0):
        self.settings, self.timeout = settings, timeout

    def send(self, text: str) -> int:
        return send_to_chat(text, self.settings, self.timeout)

    def reply(self, response_url: str, text: str) -> bool:
        return reply_to_command(response_url, text, self.timeout)
