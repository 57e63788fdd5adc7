"""The client the MAD plugin uses to hand alerts to the notifier endpoint.

It knows one URL, one token and one retry policy. Its results carry reasons built from status
codes and failure kinds only: the token, the payload (webhook URLs, credentials) and the URL's
query never reach a log through it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import requests

from madcheck.notify.retry import (
    Attempt,
    Delivery,
    RetryPolicy,
    Sleep,
    classify_response,
    post,
    send_with_retries,
)


class NotifierClient:
    """Posts JSON payloads to ``url`` with ``Authorization: Bearer <token>``, retrying."""

    def __init__(
        self,
        url: str,
        token: str | None,
        policy: RetryPolicy,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.policy = policy
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:  # keep the token out of any accidental repr
        return f"NotifierClient(url={self.url!r})"

    def send(self, payload: Mapping[str, Any], deadline: float | None = None) -> Delivery:
        """Post ``payload``; with ``deadline`` (seconds), no attempt or pause runs past it."""
        policy = self.policy if deadline is None else replace(self.policy, deadline=deadline)
        return send_with_retries(
            lambda timeout: post(
                self._session,
                self.url,
                timeout,
                json=payload,
                headers=self._headers,
                classify=classify_notifier_answer,
            ),
            policy,
            sleep=self._sleep,
        )


def classify_notifier_answer(response: requests.Response) -> Attempt:
    """Like ``classify_response``, but an answer with per-sender ``results`` is final.

    The notifier has already retried each channel; posting the same payload again would repeat
    the alert on the channels that did receive it.
    """
    attempt = classify_response(response)
    if not attempt.ok and isinstance(attempt.answer, Mapping) and "results" in attempt.answer:
        return replace(attempt, retryable=False)
    return attempt
