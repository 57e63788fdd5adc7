"""The client the MAD plugin uses to hand alerts to the notifier endpoint.

It knows one URL, one token and one retry policy. Its results carry reasons built from status
codes and failure kinds only: the token, the payload (webhook URLs, credentials) and the URL's
query never reach a log through it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
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
        policy = self.policy
        if deadline is not None:
            policy = dataclasses.replace(policy, deadline=deadline)
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
    """As ``classify_response``, except that an answer naming per-sender results is final.

    Such an answer means the notifier ran and some channels failed; repeating the same payload
    would send the message again through the channels that worked. The caller retries only the
    failed senders instead.
    """
    attempt = classify_response(response)
    answer = attempt.answer
    results = answer.get("results") if isinstance(answer, Mapping) else None
    if attempt.retryable and isinstance(results, Mapping) and results:
        return dataclasses.replace(attempt, retryable=False, retry_after=None)
    return attempt
