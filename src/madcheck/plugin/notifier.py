"""``process_request`` of the notifier trigger: engine API in, JSON answer out.

Nothing here may raise into the engine: configuration errors answer 500, malformed requests
400, failed senders 502, and anything unexpected a 500 naming only the kind of error. Log lines
carry sender names and reasons, which never hold URLs, header values, credentials or numbers.

The (event id, channel) pairs delivered are remembered in the trigger's cache
(``madcheck.notify.deliveries``), so a retried request repeats no channel that got it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from madcheck.notify.channels.base import SendContext
from madcheck.notify.deliveries import DeliveryLog
from madcheck.notify.dispatch import (
    ALREADY_DELIVERED,
    Answer,
    BadRequest,
    Outcome,
    dispatch,
    failure_answer,
    parse_request,
)
from madcheck.notify.settings import NotifierSettings, unknown_arguments

SERVER_ERROR_STATUS = 500
WARNED_OPEN_KEY = "madcheck.notifier.warned_without_allow_list"
DELIVERY_LOG_KEY = "madcheck.notifier.deliveries"
#: overlapping first calls must share one delivery log (the package is imported once)
_LOG_LOCK = threading.Lock()


def process_request(
    influxdb3_local: Any,
    query_parameters: dict[str, str] | None,
    request_headers: dict[str, str] | None,
    request_body: bytes | str | None,
    args: dict[str, str] | None = None,
) -> tuple[dict[str, Any], int]:
    try:
        answer = _handle(influxdb3_local, request_body, args)
    except Exception as error:  # the engine must always get an answer
        influxdb3_local.error(f"notifier: internal error ({type(error).__name__})")
        answer = failure_answer(f"internal error ({type(error).__name__})", SERVER_ERROR_STATUS)
    return answer.body, answer.http_status


def _handle(influxdb3_local: Any, body: bytes | str | None, args: dict[str, str] | None) -> Answer:
    for name in unknown_arguments(args):
        influxdb3_local.warn(f"notifier: ignoring unknown trigger argument {name!r}")
    try:
        settings = NotifierSettings.from_args(args)
    except ValueError as error:
        influxdb3_local.error(f"notifier: bad trigger argument: {error}")
        return failure_answer(f"bad trigger argument: {error}", SERVER_ERROR_STATUS)
    if settings.allowed_hosts.rules is None:
        _warn_once_without_allow_list(influxdb3_local)
    try:
        request = parse_request(body)
    except BadRequest as problem:
        influxdb3_local.warn(f"notifier: rejected request: {problem}")
        return failure_answer(str(problem))
    context = SendContext(settings.policy, settings.allowed_hosts, dict(os.environ))
    outcome = dispatch(request, context, log=_delivery_log(influxdb3_local))
    _log_outcome(influxdb3_local, outcome)
    return outcome.answer()


def _warn_once_without_allow_list(influxdb3_local: Any) -> None:
    """Say once per trigger (the cache outlives the call's fresh globals) that any caller may
    make this server post to any host but the forbidden networks."""
    cache = getattr(influxdb3_local, "cache", None)
    if cache is None or cache.get(WARNED_OPEN_KEY):
        return
    cache.put(WARNED_OPEN_KEY, True)
    influxdb3_local.warn(
        "notifier: running without allowed_webhook_hosts: every caller may make this server "
        "post to any host except link-local and cloud-metadata addresses; set "
        "allowed_webhook_hosts to the hosts of your webhooks"
    )


def _log_outcome(influxdb3_local: Any, outcome: Outcome) -> None:
    for name, result in outcome.results.items():
        label = name if name.isidentifier() and len(name) <= 32 else "(unnamed sender)"
        if result.ok and result.reason == ALREADY_DELIVERED:
            influxdb3_local.info(f"notifier: {label} already has this event; not sent again")
        elif result.ok:
            influxdb3_local.info(f"notifier: {label} delivered ({result.reason})")
        else:
            influxdb3_local.warn(f"notifier: {label} failed: {result.reason}")


def _delivery_log(influxdb3_local: Any) -> DeliveryLog:
    """The trigger's log of delivered (event, channel) pairs, created by its first call."""
    with _LOG_LOCK:
        log: DeliveryLog | None = influxdb3_local.cache.get(DELIVERY_LOG_KEY)
        if log is None:
            log = DeliveryLog()
            influxdb3_local.cache.put(DELIVERY_LOG_KEY, log)
        return log
