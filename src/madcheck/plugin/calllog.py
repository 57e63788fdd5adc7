"""Logging for one plugin call: an id on every line, and no secret in any of them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any


class CallLog:
    """Prefixes every line with a short id so the lines of one call can be found together, and
    masks the secrets it was given (webhook URLs, tokens, credentials) wherever they appear."""

    def __init__(self, engine: Any, label: str) -> None:
        self._engine = engine
        self.call_id = secrets.token_hex(3)
        self._prefix = f"[{label} {self.call_id}]"
        self._secrets: tuple[str, ...] = ()

    def hide(self, values: Iterable[str]) -> None:
        """Also mask these values in every later line (longest first, so none is partly shown)."""
        hidden = {*self._secrets, *(v for v in values if v)}
        self._secrets = tuple(sorted(hidden, key=len, reverse=True))

    def info(self, message: str) -> None:
        self._engine.info(self._line(message))

    def warn(self, message: str) -> None:
        self._engine.warn(self._line(message))

    def error(self, message: str) -> None:
        self._engine.error(self._line(message))

    def _line(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, mask(secret))
        return f"{self._prefix} {message}"


def mask(secret: str) -> str:
    """``****abcd`` for long secrets, ``****`` for short ones: enough to tell two apart."""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"
