"""What every channel sender shares: the message, the sending context and argument checks.

A sender reads its own arguments from the request's ``senders_config`` entry, where any of them
may name a server environment variable instead (``env:NAME``, see ``config/envref.py``).
Problems with them are raised as ``ConfigProblem`` whose text names the argument and never its
value, since values are webhook URLs, header values, credentials and phone numbers.

Every request goes through a session guarded by ``guard.py``: the allow-list is checked on the
URL and the forbidden networks on the address actually connected to, and redirects are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from madcheck.config.envref import EnvReferenceError, check_destinations, resolve
from madcheck.config.senders import ENVIRONMENT_FALLBACKS, SECRET_ARGUMENTS
from madcheck.notify.allowlist import HostAllowList, UnsafeURL
from madcheck.notify.channels.guard import GuardedAdapter, guard, hide_paths_in_urllib3_logs
from madcheck.notify.retry import (
    Attempt,
    Delivery,
    RetryPolicy,
    Sleep,
    classify_response,
    post,
    send_with_retries,
)

hide_paths_in_urllib3_logs()


class ConfigProblem(ValueError):
    """A sender's arguments cannot be used; the message is safe to log and return."""


@dataclass(frozen=True)
class Message:
    """The text to send and, when the caller gave it, the alert's structured fields."""

    text: str
    alert: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SendContext:
    """How to send: shared by all senders of one request, each with its own session."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    allowed_hosts: HostAllowList = field(default_factory=HostAllowList)
    environ: Mapping[str, str] = field(default_factory=dict)
    sleep: Sleep = time.sleep


SenderConfig = Mapping[str, Any]
Sender = Callable[[Message, SenderConfig, requests.Session, SendContext], Delivery]


def from_environment(config: SenderConfig, context: SendContext) -> dict[str, Any]:
    """``config`` with every ``env:NAME`` secret replaced by the server's variable."""
    defaults = {
        argument: variable
        for argument, variable in ENVIRONMENT_FALLBACKS.items()
        if context.environ.get(variable)
    }
    try:
        check_destinations(config, defaults)
        return {
            name: resolve(name, value, context.environ) if name in SECRET_ARGUMENTS else value
            for name, value in config.items()
        }
    except EnvReferenceError as problem:
        raise ConfigProblem(str(problem)) from None


def required_text(config: SenderConfig, name: str, fallback: str | None = None) -> str:
    """A non-empty string argument, or ``fallback`` (e.g. from the environment) when absent."""
    value = config.get(name)
    if value is None or value == "":
        value = fallback
    if value is None or value == "":
        raise ConfigProblem(f"missing {name}")
    if not isinstance(value, str):
        raise ConfigProblem(f"{name} must be a string")
    return value


def webhook_url(config: SenderConfig, name: str, context: SendContext) -> str:
    """The webhook URL argument, refused unless the allow-list lets it be sent to."""
    url = required_text(config, name)
    try:
        context.allowed_hosts.check(url)
    except UnsafeURL as problem:
        raise ConfigProblem(f"{name} {problem}") from None
    return url


def guarded_post(
    session: requests.Session,
    destinations: HostAllowList,
    argument: str,
    url: str,
    timeout: float,
    **options: Any,
) -> Attempt:
    """``post`` through a guarded session; a refused destination is a final failure."""
    adapter = _guard_of(session, destinations)
    attempt = post(session, url, timeout, allow_redirects=False, **options)
    if adapter.refusal is not None:
        return Attempt(ok=False, reason=f"refused: {argument} {adapter.refusal}")
    return attempt


def _guard_of(session: requests.Session, destinations: HostAllowList) -> GuardedAdapter:
    adapter = session.get_adapter("https://")
    if isinstance(adapter, GuardedAdapter) and adapter.destinations is destinations:
        return adapter
    return guard(session, destinations)


def post_to_webhook(
    channel: str,
    payload: Mapping[str, Any],
    config: SenderConfig,
    session: requests.Session,
    context: SendContext,
    classify: Callable[[requests.Response], Attempt] = classify_response,
) -> Delivery:
    """POST ``payload`` as JSON to ``<channel>_webhook_url`` with ``<channel>_headers``, retrying.

    Redirects are not followed: a redirect could lead past ``allowed_webhook_hosts``.
    """
    config = from_environment(config, context)
    argument = f"{channel}_webhook_url"
    url = webhook_url(config, argument, context)
    headers = extra_headers(config, f"{channel}_headers")
    return send_with_retries(
        lambda timeout: guarded_post(
            session,
            context.allowed_hosts,
            argument,
            url,
            timeout,
            json=payload,
            headers=headers,
            classify=classify,
        ),
        context.policy,
        context.sleep,
    )


def extra_headers(config: SenderConfig, name: str) -> dict[str, str]:
    """``<sender>_headers``: standard base64 of a JSON object of header names to values."""
    encoded = config.get(name)
    if encoded is None or encoded == "":
        return {}
    if not isinstance(encoded, str):
        raise ConfigProblem(f"{name} must be a base64 string")
    try:
        decoded = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise ConfigProblem(f"{name} is not base64 of a JSON object") from None
    if not isinstance(decoded, dict):
        raise ConfigProblem(f"{name} is not base64 of a JSON object")
    headers: dict[str, str] = {}
    for key, value in decoded.items():
        if not isinstance(value, str) or not _is_header_text(key) or not _is_header_text(value):
            raise ConfigProblem(f"{name} holds a header that is not a printable string")
        headers[key] = value
    return headers


def _is_header_text(text: str) -> bool:
    return text.isprintable() and text == text.strip() and text.isascii()


def fit_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-16 code units, ending in an ellipsis when cut.

    Discord counts message length in UTF-16 code units and Twilio in characters; measuring
    in UTF-16 satisfies both, because a character is never shorter than one code unit.
    """
    if _utf16_length(text) <= limit:
        return text
    kept: list[str] = []
    used = 0
    for char in text:
        size = _utf16_length(char)
        if used + size > limit - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + "\u2026"


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def error_detail(attempt_reason: str, detail: object, prefix: str) -> str:
    """Add a service's short error code to a reason, when it is one (never free text)."""
    if isinstance(detail, int) and not isinstance(detail, bool):
        return f"{attempt_reason} ({prefix} {detail})"
    if isinstance(detail, str) and _is_error_code(detail):
        return f"{attempt_reason} ({prefix} {detail})"
    return attempt_reason


def _is_error_code(text: str) -> bool:
    return 0 < len(text) <= 40 and all(
        c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in text
    )
