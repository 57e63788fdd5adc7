"""The client the MAD plugin uses to hand alerts to the notifier endpoint.

It knows one URL, one token and one retry policy. Its results carry reasons built from status
codes and failure kinds only: the token, the payload (webhook URLs, credentials) and the URL's
query never reach a log through it.

A deadline must bound the whole exchange, yet requests' ``timeout`` only limits each socket
operation: a notifier that trickles its answer a byte at a time would hold the caller for minutes.
So with a deadline the exchange runs in a worker thread that the caller (the trigger's background
sender) waits for no longer than the deadline. A worker left behind finishes on its own (its
request may still reach the notifier, which then recognises the retry by the alert's
``event_id``), and while it runs the client starts no other, so a stuck notifier costs at most
one thread per client.
"""

from __future__ import annotations

import threading
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
    describe_exception,
    post,
    send_with_retries,
)

#: why a delivery under a deadline did not start: an abandoned request of this client still runs
BUSY = "notifier still busy with an earlier request"


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
        #: the thread of the latest exchange under a deadline; it may outlive its caller
        self._worker: threading.Thread | None = None

    def __repr__(self) -> str:  # keep the token out of any accidental repr
        return f"NotifierClient(url={self.url!r})"

    def send(self, payload: Mapping[str, Any], deadline: float | None = None) -> Delivery:
        """Post ``payload``; with ``deadline`` (seconds), return by then whatever the notifier does.

        Without a deadline the exchange runs in the caller's thread, bounded only by the policy.
        """
        if deadline is None:
            return self._exchange(payload, self.policy, [0])
        waited = self._wait_for_earlier_worker(deadline)
        if waited is None:
            return Delivery(ok=False, attempts=1, reason=BUSY)
        deadline -= waited
        policy = replace(self.policy, deadline=deadline)
        if deadline <= 0:  # no time left for a request: report it without starting a thread
            return self._exchange(payload, policy, [0])
        started = [0]  # requests the worker has begun, read if it has to be abandoned
        outcome: list[Delivery] = []

        def work() -> None:
            try:
                outcome.append(self._exchange(payload, policy, started))
            except Exception as error:  # the caller must get a Delivery, not a dead thread
                outcome.append(Delivery(ok=False, attempts=1, reason=describe_exception(error)))

        # a daemon, so a notifier trickling its answer cannot hold up the interpreter's exit
        self._worker = threading.Thread(target=work, name="madcheck-notify", daemon=True)
        self._worker.start()
        self._worker.join(deadline)
        if outcome:
            return outcome[0]
        tries = max(started[0], 1)
        reason = "timed out" if tries == 1 else f"timed out after {tries} attempts"
        return Delivery(ok=False, attempts=tries, reason=reason)

    def _wait_for_earlier_worker(self, deadline: float) -> float | None:
        """Seconds spent waiting for a worker abandoned earlier; ``None`` if it still runs.

        Such a worker is usually in its last milliseconds (its own timeouts are cut to the same
        deadline), so it is worth waiting for; one that outlasts this deadline too is stuck.
        """
        if self._worker is None or not self._worker.is_alive():
            return 0.0
        began = time.monotonic()
        self._worker.join(deadline)
        return None if self._worker.is_alive() else time.monotonic() - began

    def _exchange(
        self, payload: Mapping[str, Any], policy: RetryPolicy, started: list[int]
    ) -> Delivery:
        """All attempts under ``policy``, counting in ``started`` the requests begun."""

        def attempt(timeout: float) -> Attempt:
            started[0] += 1
            return post(
                self._session,
                self.url,
                timeout,
                json=payload,
                headers=self._headers,
                classify=classify_notifier_answer,
            )

        return send_with_retries(attempt, policy, sleep=self._sleep)


def classify_notifier_answer(response: requests.Response) -> Attempt:
    """Like ``classify_response``, but an answer with per-sender ``results`` is final.

    The notifier has already retried each channel; posting the same payload again would repeat
    the alert on the channels that did receive it.
    """
    attempt = classify_response(response)
    if not attempt.ok and isinstance(attempt.answer, Mapping) and "results" in attempt.answer:
        return replace(attempt, retryable=False)
    return attempt
