"""Generic HTTP webhooks: POST a JSON document to ``http_webhook_url``; any 2xx is success.

The document is ``{"notification_text": ...}`` plus ``"alert": {...}`` when the caller sent the
alert's structured fields, so a receiving program need not parse the text.
"""

from __future__ import annotations

from typing import Any

import requests

from madcheck.notify.channels.base import (
    Message,
    SendContext,
    SenderConfig,
    extra_headers,
    webhook_url,
)
from madcheck.notify.retry import Delivery, post, send_with_retries


def send_http(
    message: Message, config: SenderConfig, session: requests.Session, context: SendContext
) -> Delivery:
    url = webhook_url(config, "http_webhook_url", context)
    headers = extra_headers(config, "http_headers")
    payload: dict[str, Any] = {"notification_text": message.text}
    if message.alert is not None:
        payload["alert"] = dict(message.alert)
    return send_with_retries(
        lambda timeout: post(
            session, url, timeout, json=payload, headers=headers, allow_redirects=False
        ),
        context.policy,
        context.sleep,
    )
