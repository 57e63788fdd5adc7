"""The notifier trigger's arguments, read into a retry policy and a host allow-list.

Everything the notifier sends arrives in each request; the trigger arguments only say how
patiently to send (so an operator, or a test, can shorten every wait) and where webhooks may go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from madcheck.config.durations import parse_backoff_range, parse_seconds
from madcheck.notify.allowlist import HostAllowList
from madcheck.notify.retry import RetryPolicy

MAX_ATTEMPTS = 10
#: one notifier call lasts at most this long by default: the engine runs a request trigger's
#: calls one at a time, so a longer call would delay every other trigger's alerts
DEFAULT_SEND_DEADLINE_S = 5.0

ARGUMENTS = (
    "allowed_webhook_hosts",
    "retry_attempts",
    "retry_backoff",
    "retry_after_cap",
    "request_timeout",
    "send_deadline",
)


@dataclass(frozen=True)
class NotifierSettings:
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    allowed_hosts: HostAllowList = field(default_factory=HostAllowList)

    @classmethod
    def from_args(cls, args: Mapping[str, str] | None) -> NotifierSettings:
        """Raise ``ValueError`` naming the argument when one cannot be read."""
        args = args or {}
        default = RetryPolicy()
        policy = RetryPolicy(
            attempts=_attempts(args.get("retry_attempts"), default.attempts),
            backoff=_backoff(args.get("retry_backoff"), default.backoff),
            retry_after_cap=_duration(args, "retry_after_cap", default.retry_after_cap),
            timeout=_duration(args, "request_timeout", default.timeout),
            deadline=_duration(args, "send_deadline", DEFAULT_SEND_DEADLINE_S),
            deadline_cuts_timeout=False,  # a channel still sending is left to finish (dispatch)
        )
        return cls(policy, HostAllowList.parse(args.get("allowed_webhook_hosts")))


def unknown_arguments(args: Mapping[str, str] | None) -> list[str]:
    """Argument names this trigger does not read: most likely typos, worth a warning."""
    return sorted(name for name in (args or {}) if name not in ARGUMENTS)


def _attempts(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        attempts = int(text.strip())
    except ValueError:
        attempts = 0
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise ValueError(f"retry_attempts must be a whole number from 1 to {MAX_ATTEMPTS}")
    return attempts


def _backoff(text: str | None, default: tuple[float, float]) -> tuple[float, float]:
    if text is None:
        return default
    try:
        return parse_backoff_range(text)
    except ValueError as error:
        raise ValueError(f"retry_backoff: {error} (write a range such as 1s..4s)") from None


def _duration(args: Mapping[str, str], name: str, default: float) -> float:
    value = _optional_duration(args, name)
    return default if value is None else value


def _optional_duration(args: Mapping[str, str], name: str) -> float | None:
    """A duration (``10s``, ``250ms``) or a bare number of seconds, as in the MAD trigger."""
    text = args.get(name)
    if text is None:
        return None
    try:
        seconds = parse_seconds(text)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    if seconds == 0 and name != "retry_after_cap":
        raise ValueError(f"{name}: must be greater than zero")
    return seconds
