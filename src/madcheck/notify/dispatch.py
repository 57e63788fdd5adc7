"""One notification request: check its body, send to every named channel at once, answer.

The answer's shape is the contract with the MAD plugin (docs/ARCHITECTURE.md):
``{"status": "ok"|"partial"|"failed", "results": {sender: {"ok": bool, "reason": str}}}``,
HTTP 200 when every sender succeeded and 502 when any failed, so the caller can retry only
the failed senders. A malformed request is answered 400 with ``"error"`` and nothing is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from madcheck.notify.channels import SENDERS
from madcheck.notify.channels.base import ConfigProblem, Message, SendContext, Sender
from madcheck.notify.retry import describe_exception

OK_STATUS = 200
FAILED_STATUS = 502
BAD_REQUEST_STATUS = 400


class BadRequest(ValueError):
    """The body cannot be read as a notification request; the message is safe to return."""


@dataclass(frozen=True)
class NotificationRequest:
    message: Message
    senders: Mapping[str, Any]


@dataclass(frozen=True)
class SenderResult:
    ok: bool
    reason: str


@dataclass(frozen=True)
class Answer:
    """What the endpoint returns: a JSON body and its HTTP status."""

    body: dict[str, Any]
    http_status: int


@dataclass(frozen=True)
class Outcome:
    """Every sender's result, in the order the request named them."""

    results: dict[str, SenderResult] = field(default_factory=dict)

    @property
    def status(self) -> str:
        delivered = sum(result.ok for result in self.results.values())
        if delivered == len(self.results):
            return "ok"
        return "partial" if delivered else "failed"

    def answer(self) -> Answer:
        body = {
            "status": self.status,
            "results": {
                name: {"ok": result.ok, "reason": result.reason}
                for name, result in self.results.items()
            },
        }
        return Answer(body, OK_STATUS if self.status == "ok" else FAILED_STATUS)


def failure_answer(problem: str, http_status: int = BAD_REQUEST_STATUS) -> Answer:
    """An answer for a request nothing was sent for: why, and no per-sender results."""
    return Answer({"status": "failed", "error": problem, "results": {}}, http_status)


def parse_request(body: bytes | str | None) -> NotificationRequest:
    """Read the request body; raise ``BadRequest`` saying what is wrong with it."""
    if body is None or not body.strip():
        raise BadRequest("the request body is empty: send a JSON object")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("the request body must be a JSON object")
    text = document.get("notification_text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("notification_text must be a non-empty string")
    senders = document.get("senders_config")
    if not isinstance(senders, dict) or not senders:
        raise BadRequest("senders_config must be an object naming at least one sender")
    misshapen = sorted(name for name, config in senders.items() if not isinstance(config, dict))
    if misshapen:
        raise BadRequest(f"senders_config entries must be objects: {', '.join(misshapen)}")
    alert = document.get("alert")
    if alert is not None and not isinstance(alert, dict):
        raise BadRequest("alert, when given, must be an object")
    return NotificationRequest(Message(text, alert), senders)


def dispatch(
    request: NotificationRequest,
    context: SendContext,
    senders: Mapping[str, Sender] = SENDERS,
) -> Outcome:
    """Send to every named sender concurrently; unknown names fail without holding the rest."""
    known = {name: senders[name] for name in request.senders if name in senders}
    results: dict[str, SenderResult] = {}
    if known:
        with ThreadPoolExecutor(max_workers=len(known)) as pool:
            futures = {
                name: pool.submit(_send_one, send, request.message, request.senders[name], context)
                for name, send in known.items()
            }
            finished = {name: future.result() for name, future in futures.items()}
    else:
        finished = {}
    unknown = SenderResult(False, f"unknown sender; known senders: {', '.join(sorted(senders))}")
    for name in request.senders:
        results[name] = finished.get(name, unknown)
    return Outcome(results)


def _send_one(
    send: Sender, message: Message, config: Mapping[str, Any], context: SendContext
) -> SenderResult:
    """One sender's delivery; no failure of one sender may escape into the others."""
    try:
        with requests.Session() as session:
            delivery = send(message, config, session, context)
    except ConfigProblem as problem:
        return SenderResult(False, str(problem))
    except Exception as error:  # a bug in one sender must not lose the others' results
        return SenderResult(False, describe_exception(error))
    return SenderResult(delivery.ok, delivery.reason)
