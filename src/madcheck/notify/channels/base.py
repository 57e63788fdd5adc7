"""What every channel sender shares: the message, the sending context and argument checks.

A sender reads its own arguments from the request's ``senders_config`` entry. Problems with
them are raised as ``ConfigProblem`` whose text names the argument and never its value, since
values are webhook URLs, header values, credentials and phone numbers.
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

from madcheck.notify.allowlist import HostAllowList
from madcheck.notify.retry import (
    Attempt,
    Delivery,
    RetryPolicy,
    Sleep,
    classify_response,
    post,
    send_with_retries,
)


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
    """The webhook URL argument, refused unless it is http(s) and its host is allowed."""
    url = required_text(config, name)
    if not HostAllowList().allows(url):
        raise ConfigProblem(f"{name} is not an http(s) URL")
    if not context.allowed_hosts.allows(url):
        raise ConfigProblem(f"the host of {name} is not in allowed_webhook_hosts")
    return url


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
    url = webhook_url(config, f"{channel}_webhook_url", context)
    headers = extra_headers(config, f"{channel}_headers")
    return send_with_retries(
        lambda timeout: post(
            session,
            url,
            timeout,
            json=payload,
            headers=headers,
            classify=classify,
            allow_redirects=False,
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
