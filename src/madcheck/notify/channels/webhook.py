"""Generic HTTP webhooks: POST a JSON document to ``http_webhook_url``; any 2xx is success.

The document is ``{"notification_text": ...}`` plus ``"alert": {...}`` when the caller sent the
alert's structured fields, so a receiving program need not parse the text.
"""

from __future__ import annotations

from typing import Any

import requests

from madcheck.notify.channels.base import Message, SendContext, SenderConfig, post_to_webhook
from madcheck.notify.retry import Delivery


def send_http(
    message: Message, config: SenderConfig, session: requests.Session, context: SendContext
) -> Delivery:
    payload: dict[str, Any] = {"notification_text": message.text}
    if message.alert is not None:
        payload["alert"] = dict(message.alert)
    return post_to_webhook("http", payload, config, session, context)
