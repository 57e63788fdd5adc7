"""SMS and WhatsApp through Twilio's Messages API, over plain HTTP.

POST form fields ``To``, ``From`` and ``Body`` to
``{base}/2010-04-01/Accounts/{sid}/Messages.json`` with basic auth ``sid:token``; Twilio answers
201 with the created message. Errors are JSON ``{"code", "message", "more_info", "status"}``;
only the numeric code goes into the reason, since the message text can quote phone numbers.
Any of the four arguments may be ``env:NAME``; the numbers only when the account SID comes from
the environment too (``config/envref.py``), so nobody can have them sent into their own account.

Plain ``requests`` rather than the ``twilio`` SDK: the engine already has ``requests``, the call
is one form POST, and the SDK would add a dependency and its own retry and error handling on top
of the policy every other channel follows.
"""

from __future__ import annotations

from urllib.parse import quote

import requests

from madcheck.notify.allowlist import HostAllowList
from madcheck.notify.channels.base import (
    ConfigProblem,
    Message,
    SendContext,
    SenderConfig,
    error_detail,
    fit_text,
    from_environment,
    guarded_post,
    required_text,
)
from madcheck.notify.retry import Attempt, Delivery, classify_response, send_with_retries

DEFAULT_API_BASE = "https://api.twilio.com"
MAX_BODY = 1600
WHATSAPP_PREFIX = "whatsapp:"


def send_sms(
    message: Message, config: SenderConfig, session: requests.Session, context: SendContext
) -> Delivery:
    return _send(message, config, session, context, whatsapp=False)


def send_whatsapp(
    message: Message, config: SenderConfig, session: requests.Session, context: SendContext
) -> Delivery:
    return _send(message, config, session, context, whatsapp=True)


def _send(
    message: Message,
    config: SenderConfig,
    session: requests.Session,
    context: SendContext,
    *,
    whatsapp: bool,
) -> Delivery:
    config = from_environment(config, context)
    sid = required_text(config, "twilio_sid", context.environ.get("TWILIO_SID"))
    token = required_text(config, "twilio_token", context.environ.get("TWILIO_TOKEN"))
    if not sid.isascii() or not sid.isalnum():
        raise ConfigProblem("twilio_sid must be letters and digits (an Account SID)")
    sender = required_text(config, "twilio_from_number")
    recipient = required_text(config, "twilio_to_number")
    if whatsapp:
        sender, recipient = _whatsapp(sender), _whatsapp(recipient)
    form = {"To": recipient, "From": sender, "Body": fit_text(message.text, MAX_BODY)}
    base = context.environ.get("TWILIO_API_BASE_URL") or DEFAULT_API_BASE
    url = f"{base.rstrip('/')}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
    # The API's address is the server's own setting, not a webhook: allowed_webhook_hosts does
    # not apply, but the forbidden networks (cloud metadata) do.
    destinations = HostAllowList(None, context.allowed_hosts.forbidden)
    return send_with_retries(
        lambda timeout: guarded_post(
            session,
            destinations,
            "TWILIO_API_BASE_URL",
            url,
            timeout,
            data=form,
            auth=(sid, token),
            classify=_classify,
        ),
        context.policy,
        context.sleep,
    )


def _whatsapp(number: str) -> str:
    return number if number.startswith(WHATSAPP_PREFIX) else f"{WHATSAPP_PREFIX}{number}"


def _classify(response: requests.Response) -> Attempt:
    attempt = classify_response(response)
    if attempt.ok:
        return Attempt(ok=True, reason=attempt.reason, status=attempt.status)
    code = attempt.answer.get("code") if isinstance(attempt.answer, dict) else None
    return Attempt(
        ok=False,
        reason=error_detail(attempt.reason, code, "Twilio error"),
        retryable=attempt.retryable,
        retry_after=attempt.retry_after,
        status=attempt.status,
    )
