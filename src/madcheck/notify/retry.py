"""Attempts with randomized backoff, shared by the alert client and every channel sender.

An HTTP exchange is reduced to an ``Attempt``: did it work, may it be tried again, did the server
ask us to wait. ``send_with_retries`` then applies one policy to any sender. Reasons are short and
built only from status codes and exception types, never from URLs or bodies, because the URLs of
webhooks are secrets.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try."""

    ok: bool
    reason: str
    retryable: bool = False
    retry_after: float | None = None
    status: int | None = None
    answer: Any = None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to try.

    ``backoff`` is the range a randomized pause is drawn from between attempts; a server's
    ``Retry-After`` replaces it, capped at ``retry_after_cap`` so one channel cannot park a
    sender for minutes. ``deadline`` (seconds, optional) bounds the whole exchange: no attempt
    starts, and no pause is taken, past it; with ``deadline_cuts_timeout`` the last attempt's
    timeout is also cut to what is left. The notifier's channels keep their full timeout
    instead: a call abandons a channel still sending at its deadline, and a request allowed to
    finish late is better than one cut off and sent again.
    """

    attempts: int = 3
    backoff: tuple[float, float] = (1.0, 4.0)
    retry_after_cap: float = 30.0
    timeout: float = 10.0
    deadline: float | None = None
    deadline_cuts_timeout: bool = True

    def pause_before_retry(self, attempt: Attempt) -> float:
        if attempt.retry_after is not None:
            return max(0.0, min(attempt.retry_after, self.retry_after_cap))
        low, high = self.backoff
        return random.uniform(low, high)


@dataclass(frozen=True)
class Delivery:
    """The result of all attempts at one delivery."""

    ok: bool
    attempts: int
    reason: str
    status: int | None = None
    answer: Any = None
    #: False when the last attempt failed in a way no later attempt can mend
    retryable: bool = True
    #: seconds the service asked to wait (``Retry-After``) at the last attempt, if it did
    retry_after: float | None = None


Sleep = Callable[[float], None]


def send_with_retries(
    send: Callable[[float], Attempt],
    policy: RetryPolicy,
    sleep: Sleep = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Delivery:
    """Call ``send(timeout)`` until it succeeds, fails permanently or attempts run out."""
    started = clock()
    attempt = Attempt(ok=False, reason="not attempted")
    tries = 0
    for tries in range(1, policy.attempts + 1):
        timeout = policy.timeout
        if policy.deadline is not None:
            remaining = policy.deadline - (clock() - started)
            if remaining <= 0:
                tries -= 1
                break
            if policy.deadline_cuts_timeout:
                timeout = min(timeout, remaining)
        attempt = send(timeout)
        if attempt.ok or not attempt.retryable or tries == policy.attempts:
            break
        pause = policy.pause_before_retry(attempt)
        if policy.deadline is not None and clock() - started + pause >= policy.deadline:
            break
        sleep(pause)
    reason = attempt.reason if tries <= 1 else f"{attempt.reason} after {tries} attempts"
    return Delivery(
        attempt.ok,
        tries,
        reason,
        attempt.status,
        attempt.answer,
        attempt.retryable,
        None if attempt.ok else attempt.retry_after,
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def classify_response(response: requests.Response) -> Attempt:
    """2xx works; 429 and 5xx may be retried (honouring ``Retry-After``); other codes are final.

    A JSON answer is kept in ``Attempt.answer`` so callers can read per-sender results.
    """
    status = response.status_code
    answer = _json_answer(response)
    if 200 <= status < 300:
        return Attempt(ok=True, reason=f"HTTP {status}", status=status, answer=answer)
    if status == 429 or status >= 500:
        return Attempt(
            ok=False,
            reason=f"HTTP {status}",
            retryable=True,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            status=status,
            answer=answer,
        )
    return Attempt(ok=False, reason=f"HTTP {status}", status=status, answer=answer)


def _json_answer(response: requests.Response) -> Any:
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def describe_exception(error: BaseException) -> str:
    """A reason for a failed exchange that names the kind of failure, never the URL."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    if isinstance(error, requests.RequestException):
        return f"request failed ({type(error).__name__})"
    return f"unexpected {type(error).__name__}"


def post(
    session: requests.Session,
    url: str,
    timeout: float,
    *,
    json: Any = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    classify: Callable[[requests.Response], Attempt] = classify_response,
    allow_redirects: bool = True,
) -> Attempt:
    """One POST, reduced to an ``Attempt``. Transport errors are retryable.

    ``allow_redirects=False`` reports a 3xx as a final failure instead of following it: the
    notifier checks webhook hosts against an allow-list, and a redirect would step around it.
    """
    try:
        response = session.post(
            url,
            json=json,
            data=data,
            headers=dict(headers or {}),
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
    except (requests.exceptions.InvalidJSONError, UnicodeError) as error:
        # The request itself cannot be built (a NaN in the JSON, a header that is not latin-1):
        # trying again would fail the same way.
        return Attempt(ok=False, reason=f"request could not be encoded ({type(error).__name__})")
    except requests.RequestException as error:
        return Attempt(ok=False, reason=describe_exception(error), retryable=True)
    with response:
        return classify(response)
