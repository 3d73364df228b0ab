"""Sending a line of text to chat: Slack and Mattermost incoming webhooks speak the same JSON."""
from __future__ import annotations

import json
import logging
import os
import urllib.request

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
