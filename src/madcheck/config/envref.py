"""Secrets kept in the server's environment and named in arguments: ``env:NAME``.

InfluxDB 3 stores trigger arguments as given and shows them to every token holder
(``system.processing_engine_trigger_arguments``), so a webhook URL or token written there is
readable by all of them. Written as ``slack_webhook_url=env:SLACK_WEBHOOK_URL``, the argument
holds only a variable's name; the MAD plugin and the notifier, which both run in the server's
process, read the value from the environment when they load.

An environment reference must not become a way to send the server's secrets somewhere a stranger
chose. A value that travels with a destination (a webhook's headers; the phone numbers of a
Twilio account, which the account's owner can read back) may come from the environment only when
that destination does too: ``slack_headers=env:...`` needs ``slack_webhook_url=env:...``, and
``twilio_to_number=env:...`` needs the account SID from the environment. Credentials that only
ever go to a fixed service (``twilio_token``, ``influxdb3_auth_token``) may always be referenced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PREFIX = "env:"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

#: argument -> the argument saying where it is sent; the first may come from the environment
#: only when the second does.
DESTINATION_OF = {
    "slack_headers": "slack_webhook_url",
    "discord_headers": "discord_webhook_url",
    "http_headers": "http_webhook_url",
    "twilio_from_number": "twilio_sid",
    "twilio_to_number": "twilio_sid",
}


class EnvReferenceError(ValueError):
    """An ``env:`` reference cannot be used; the message names the argument and variable only."""


def variable_name(value: object) -> str | None:
    """The variable ``value`` refers to (``env:NAME``, quotes and white space allowed around
    it), or ``None`` when it is a plain value."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text[len(PREFIX) :].strip() if text.startswith(PREFIX) else None


def resolve(argument: str, value: object, environ: Mapping[str, str]) -> object:
    """``value``, or the environment variable it names. Raises ``EnvReferenceError``."""
    name = variable_name(value)
    if name is None:
        return value
    if not _NAME.fullmatch(name):
        raise EnvReferenceError(
            f"{argument}: 'env:' must be followed by the name of an environment variable "
            "(letters, digits and _, not starting with a digit), e.g. env:SLACK_WEBHOOK_URL"
        )
    found = environ.get(name)
    if found is None or not found.strip():
        raise EnvReferenceError(
            f"{argument}=env:{name}: the environment variable {name} is not set (or empty) "
            "in the server's environment"
        )
    if variable_name(found) is not None:
        raise EnvReferenceError(
            f"{argument}=env:{name}: the variable holds another env: reference; they do not nest"
        )
    return found.strip()


def check_destinations(
    arguments: Mapping[str, object], environ_defaults: Mapping[str, str] | None = None
) -> None:
    """Refuse an ``env:`` value whose destination argument is not from the environment too.

    ``environ_defaults`` maps a destination argument to the default variable that supplies it
    when the argument is absent (``twilio_sid`` -> ``TWILIO_SID`` when that variable is set).
    """
    defaults = environ_defaults or {}
    for argument, destination in DESTINATION_OF.items():
        if variable_name(arguments.get(argument)) is None:
            continue
        given = arguments.get(destination)
        from_environment = variable_name(given) is not None or (
            given in (None, "") and destination in defaults
        )
        if not from_environment:
            raise EnvReferenceError(
                f"{argument} may come from the environment only when {destination} does too "
                f"(write {destination}=env:NAME), so that the server's secrets are sent only "
                "where the server's own configuration says"
            )
