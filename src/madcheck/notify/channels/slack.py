"""Slack incoming webhooks: POST ``{"text": ...}``; Slack answers 200 ``ok``.

Failures come back as a status with a short code in a plain-text body (``invalid_payload``,
``channel_not_found``, ...), which is added to the reason; 429 carries ``Retry-After``.
"""

from __future__ import annotations

import requests

from madcheck.notify.channels.base import (
    Message,
    SendContext,
    SenderConfig,
    error_detail,
    post_to_webhook,
)
from madcheck.notify.retry import Attempt, Delivery, classify_response


def send_slack(
    message: Message, config: SenderConfig, session: requests.Session, context: SendContext
) -> Delivery:
    return post_to_webhook(
        "slack", {"text": message.text}, config, session, context, classify=_classify
    )


def _classify(response: requests.Response) -> Attempt:
    attempt = classify_response(response)
    if attempt.ok:
        return attempt
    reason = error_detail(attempt.reason, response.text.strip(), "Slack")
    return Attempt(
        ok=False,
        reason=reason,
        retryable=attempt.retryable,
        retry_after=attempt.retry_after,
        status=attempt.status,
    )
