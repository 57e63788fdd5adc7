"""One notification request: check its body, send to every named channel at once, answer.

The answer's shape is the contract with the MAD plugin (docs/ARCHITECTURE.md):
``{"status": "ok"|"partial"|"failed", "results": {sender: {"ok": bool, "reason": str}}}``
(a failed sender may add ``"retry_after"``, seconds), HTTP 200 when every sender succeeded and
502 when any failed, so the caller can retry only the failed senders. A malformed request is
answered 400 with ``"error"`` and nothing is sent.

The engine runs a request trigger's calls one at a time, so one slow channel would delay every
other alert of the server. A call therefore returns by its deadline (``send_deadline``): each
channel is sent in its own thread, and a channel still sending then is reported failed, its
thread left to finish on its own. With the request's ``alert.event_id`` and a ``DeliveryLog``,
a channel that already got the event is not sent it again, and one still being sent by such a
left-behind thread is waited for rather than sent twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from madcheck.notify.channels import SENDERS
from madcheck.notify.channels.base import ConfigProblem, Message, SendContext, Sender
from madcheck.notify.deliveries import Claim, DeliveryLog
from madcheck.notify.retry import describe_exception

OK_STATUS = 200
FAILED_STATUS = 502
BAD_REQUEST_STATUS = 400
MAX_EVENT_ID = 128
STILL_SENDING = "still sending at send_deadline"
ALREADY_DELIVERED = "already delivered"


class BadRequest(ValueError):
    """The body cannot be read as a notification request; the message is safe to return."""


@dataclass(frozen=True)
class NotificationRequest:
    message: Message
    senders: Mapping[str, Any]
    #: ``alert.event_id``: the same at every retry of one alert event, if the caller gave one
    event_id: str | None = None


@dataclass(frozen=True)
class SenderResult:
    ok: bool
    reason: str
    #: seconds the service asked to wait before the next try (``Retry-After``), if it did
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"ok": self.ok, "reason": self.reason}
        if self.retry_after is not None:
            result["retry_after"] = self.retry_after
        return result


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
            "results": {name: result.as_dict() for name, result in self.results.items()},
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
    event_id = alert.get("event_id") if alert is not None else None
    if event_id is not None and not _is_event_id(event_id):
        raise BadRequest(
            f"alert.event_id, when given, must be 1 to {MAX_EVENT_ID} printable ASCII characters"
        )
    return NotificationRequest(Message(text, alert), senders, event_id)


def _is_event_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_EVENT_ID
        and value.isascii()
        and value.isprintable()
    )


def dispatch(
    request: NotificationRequest,
    context: SendContext,
    senders: Mapping[str, Sender] = SENDERS,
    log: DeliveryLog | None = None,
) -> Outcome:
    """Send to every named sender concurrently, returning by ``context.policy.deadline``.

    Unknown names fail without holding the rest. With ``log`` and an event id, a channel is
    never sent one event twice.
    """
    deadline = context.policy.deadline
    ends_at = None if deadline is None else time.monotonic() + deadline
    known = [name for name in request.senders if name in senders]
    runs = {name: _Run(name, senders[name], request, context, log) for name in known}
    for run in runs.values():
        run.start()
    for run in runs.values():
        run.wait(None if ends_at is None else max(0.0, ends_at - time.monotonic()))
    unknown = SenderResult(False, f"unknown sender; known senders: {', '.join(sorted(senders))}")
    results = {name: runs[name].result() if name in runs else unknown for name in request.senders}
    return Outcome(results)


class _Run:
    """One channel of one request, in its own daemon thread so a call can leave it behind."""

    def __init__(
        self,
        name: str,
        send: Sender,
        request: NotificationRequest,
        context: SendContext,
        log: DeliveryLog | None,
    ) -> None:
        self._send = send
        self._message = request.message
        self._config = request.senders[name]
        self._context = context
        self._log = log
        self._key = (request.event_id, name) if request.event_id is not None else None
        self._done = threading.Event()
        self._result = SenderResult(False, STILL_SENDING)
        self._thread = threading.Thread(target=self._run, name=f"madcheck-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float | None) -> None:
        self._done.wait(timeout)

    def result(self) -> SenderResult:
        return self._result if self._done.is_set() else SenderResult(False, STILL_SENDING)

    def _run(self) -> None:
        try:
            self._result = self._deliver()
        finally:
            self._done.set()

    def _deliver(self) -> SenderResult:
        if self._log is None or self._key is None:
            return _send_one(self._send, self._message, self._config, self._context)
        for _ in range(2):  # a second look after waiting for an earlier send of the same pair
            claim, running = self._log.claim(self._key)
            if claim is Claim.DELIVERED:
                return SenderResult(True, ALREADY_DELIVERED)
            if claim is Claim.BUSY:
                return SenderResult(False, "too many deliveries still in progress")
            if claim is Claim.MINE:
                result = SenderResult(False, "not sent")
                try:
                    result = _send_one(self._send, self._message, self._config, self._context)
                finally:
                    self._log.finish(self._key, result.ok)
                return result
            assert running is not None
            # The calling request returns at its deadline whatever this thread does.
            running.wait(self._context.policy.deadline)
        return SenderResult(False, "still being sent by an earlier request")


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
    return SenderResult(delivery.ok, delivery.reason, delivery.retry_after)
