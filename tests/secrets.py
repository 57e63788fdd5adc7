"""Every secret the test session handed to the code, so the final log scan can look for them.

Secrets get here two ways:

- **harvested**: every call of the plugin entry points (``madcheck.plugin.writes.
  process_writes``, ``madcheck.plugin.missing.process_scheduled_call`` and
  ``madcheck.plugin.notifier.process_request``) is watched by
  ``tests/logscan.py``; the values of secret trigger arguments (webhook URLs, header blobs, Twilio
  credentials and numbers, the auth token), the ``senders_config`` of notifier requests and the
  secret environment variables are registered before the call runs. A new test that passes its
  secrets through a plugin needs to do nothing.
- **registered by hand**, for a secret that reaches code some other way (a channel sender called
  directly, a stand-in service's credentials): ``from tests.secrets import secret`` and write
  ``TOKEN = secret("...")``, or call ``register(...)``.

Values shorter than ``MIN_LENGTH`` are not scanned for: ``"tok"`` is in every line that says
"token". Tests that feed random text to the plugins (the fuzz tests) wrap their calls in
``paused()``, since a random "webhook URL" such as ``"0"`` is not a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from madcheck.config.envref import variable_name
from madcheck.config.senders import ENVIRONMENT_FALLBACKS, SECRET_ARGUMENTS

MIN_LENGTH = 8
SECRET_ENVIRONMENT = (*ENVIRONMENT_FALLBACKS.values(), "INFLUXDB3_AUTH_TOKEN")
_SECRET_KEYS = frozenset({*SECRET_ARGUMENTS, "influxdb3_auth_token", "token"})

SECRETS: set[str] = set()
_harvesting = [True]


def register(*values: object) -> None:
    """Remember these values, and their telling parts, as secrets."""
    for value in values:
        if not isinstance(value, str):
            continue
        text = value.strip().strip("\"'")
        for part in (text, *_parts(text)):
            if len(part) >= MIN_LENGTH:
                SECRETS.add(part)


def secret(value: str) -> str:
    """``HOOK = secret("https://hooks.slack.test/...")``: register and return ``value``."""
    register(value)
    return value


@contextmanager
def paused() -> Iterator[None]:
    """Do not harvest inside this block (random input is not a secret)."""
    _harvesting.append(False)
    try:
        yield
    finally:
        _harvesting.pop()


def harvest_arguments(arguments: object) -> None:
    """Register the values of secret trigger arguments, and the secret environment."""
    if not _harvesting[-1]:
        return
    register(*(os.environ.get(name) for name in SECRET_ENVIRONMENT))
    if isinstance(arguments, Mapping):
        values = [v for k, v in arguments.items() if isinstance(k, str) and k in _SECRET_KEYS]
        register(*_plain(values), *_referenced(values))


def _plain(values: Iterable[object]) -> list[object]:
    """The values that are secrets themselves, not ``env:NAME`` references to one."""
    return [value for value in values if variable_name(value) is None]


def _referenced(values: Iterable[object]) -> Iterator[str | None]:
    """The environment variables that ``env:NAME`` values name: the secrets themselves."""
    for value in values:
        name = variable_name(value)
        if name:
            yield os.environ.get(name)


def harvest_request_body(body: object) -> None:
    """Register every value in a notifier request's ``senders_config``."""
    if not _harvesting[-1]:
        return
    try:
        parsed = json.loads(body) if isinstance(body, bytes | str) else None
    except (ValueError, UnicodeDecodeError):
        return
    senders = parsed.get("senders_config") if isinstance(parsed, dict) else None
    if isinstance(senders, Mapping):
        for settings in senders.values():
            if isinstance(settings, Mapping):
                register(*_plain(settings.values()), *_referenced(settings.values()))


def leaks(lines: Iterable[str], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """``(secret, line)`` for every secret found in a line."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    return [(value, line) for line in lines for value in ordered if value in line]


def _parts(text: str) -> Iterator[str]:
    """Pieces of a secret that are secrets themselves: a webhook URL's path, the values inside a
    base64 header blob, a phone number without its ``+``."""
    if text.startswith(("http://", "https://")):
        path = urlsplit(text).path.strip("/")
        if path:
            yield path
    if text.startswith("+") and text[1:].isdigit():
        yield text[1:]
    yield from _header_values(text)


def _header_values(text: str) -> Iterator[str]:
    try:
        decoded: Any = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return
    if isinstance(decoded, Mapping):
        for value in decoded.values():
            if isinstance(value, str):
                yield value
