"""Which notification channels an alert goes to, and the arguments each needs.

The MAD plugin does not talk to Slack or Twilio itself: it forwards each sender's arguments to the
notifier plugin in ``senders_config``. Checking them here, when the trigger's config is loaded,
turns a missing webhook URL into one clear warning, and a webhook URL the notifier would refuse
(``ftp://x``, a backslash in the host) into a configuration error, instead of a failure at 3 a.m.

Every sender argument may name a server environment variable (``env:SLACK_WEBHOOK_URL``, see
``envref.py``); it is resolved here, and the resolved value is what the notifier receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from madcheck.config.envref import check_destinations, resolve
from madcheck.config.quoting import unquote
from madcheck.notify.allowlist import UnsafeURL, parse_destination

_TWILIO_ARGS = ("twilio_sid", "twilio_token", "twilio_from_number", "twilio_to_number")


@dataclass(frozen=True)
class SenderSpec:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


SENDERS: dict[str, SenderSpec] = {
    "slack": SenderSpec(("slack_webhook_url",), ("slack_headers",)),
    "discord": SenderSpec(("discord_webhook_url",), ("discord_headers",)),
    "http": SenderSpec(("http_webhook_url",), ("http_headers",)),
    "sms": SenderSpec(_TWILIO_ARGS),
    "whatsapp": SenderSpec(_TWILIO_ARGS),
}

#: Arguments that may instead come from the environment, as the seed allows for Twilio.
ENVIRONMENT_FALLBACKS = {"twilio_sid": "TWILIO_SID", "twilio_token": "TWILIO_TOKEN"}

#: Every sender argument holds a secret or personal data (URLs, headers, credentials, numbers).
SECRET_ARGUMENTS = frozenset(
    name for spec in SENDERS.values() for name in (*spec.required, *spec.optional)
)


def parse_sender_names(value: object) -> list[str]:
    """``slack.discord`` (dot-separated, as in the seed) or a TOML list of names."""
    if isinstance(value, str):
        names = unquote(value).split(".")
    elif isinstance(value, list):
        names = [str(name) for name in value]
    else:
        return []
    unique: list[str] = []
    for name in (n.strip().lower() for n in names):
        if name and name not in unique:
            unique.append(name)
    return unique


def build_senders_config(
    names: list[str], arguments: Mapping[str, object], environ: Mapping[str, str]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The ``senders_config`` payload for the usable senders, and a warning per dropped one.

    Raises ``ValueError`` naming the argument when an ``env:`` reference cannot be resolved or a
    webhook URL is not one the notifier would send to.
    """
    defaults = {arg: var for arg, var in ENVIRONMENT_FALLBACKS.items() if environ.get(var)}
    config: dict[str, dict[str, str]] = {}
    warnings: list[str] = []
    for name in names:
        spec = SENDERS.get(name)
        if spec is None:
            known = ", ".join(SENDERS)
            warnings.append(f"sender {name!r} dropped: unknown sender (known: {known})")
            continue
        own = (*spec.required, *spec.optional)
        check_destinations({argument: arguments.get(argument) for argument in own}, defaults)
        values: dict[str, str] = {}
        missing: list[str] = []
        for argument in spec.required:
            value = _argument(argument, arguments, environ)
            if value:
                values[argument] = value
            else:
                missing.append(argument)
        if missing:
            warnings.append(f"sender {name!r} dropped: missing {', '.join(missing)}")
            continue
        for argument in spec.optional:
            value = _argument(argument, arguments, environ)
            if value:
                values[argument] = value
        for argument, value in values.items():
            if argument.endswith("_webhook_url"):
                _check_webhook_url(argument, value)
        config[name] = values
    return config, warnings


def _argument(name: str, arguments: Mapping[str, object], environ: Mapping[str, str]) -> str:
    value = resolve(name, arguments.get(name), environ)
    if value is None or value == "":
        fallback = ENVIRONMENT_FALLBACKS.get(name)
        value = environ.get(fallback, "") if fallback else ""
    return unquote(str(value))


def _check_webhook_url(argument: str, url: str) -> None:
    try:
        parse_destination(url)
    except UnsafeURL as problem:
        raise ValueError(f"{argument} {problem}") from None
