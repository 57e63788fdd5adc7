"""Discord webhooks: POST ``{"content": ...}``; Discord answers 204 No Content.

A message holds at most 2,000 characters, so longer text is truncated (ending in an ellipsis)
rather than split: one alert stays one message, and a retry cannot repeat half of it. On 429
Discord says how long to wait in the JSON body's ``retry_after`` (seconds, fractional), which
is more precise than its ``Retry-After`` header and preferred to it.
"""

from __future__ import annotations

from typing import Any

import requests

from madcheck.notify.channels.base import (
    Message,
    SendContext,
    SenderConfig,
    error_detail,
    fit_text,
    post_to_webhook,
)
from madcheck.notify.retry import Attempt, Delivery, classify_response

MAX_CONTENT = 2000


def send_discord(
    message: Message, config: SenderConfig, session: requests.Session, context: SendContext
) -> Delivery:
    payload = {"content": fit_text(message.text, MAX_CONTENT)}
    return post_to_webhook("discord", payload, config, session, context, classify=_classify)


def _classify(response: requests.Response) -> Attempt:
    attempt = classify_response(response)
    if attempt.ok:
        return attempt
    answer: Any = attempt.answer if isinstance(attempt.answer, dict) else {}
    retry_after = attempt.retry_after
    body_wait = answer.get("retry_after")
    if attempt.status == 429 and isinstance(body_wait, int | float) and body_wait >= 0:
        retry_after = float(body_wait)
    return Attempt(
        ok=False,
        reason=error_detail(attempt.reason, answer.get("code"), "Discord error"),
        retryable=attempt.retryable,
        retry_after=retry_after,
        status=attempt.status,
    )
