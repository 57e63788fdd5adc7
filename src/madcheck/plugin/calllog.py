"""Logging for one plugin call: an id on every line, and no secret in any of them.

Most calls log nothing (a steady-state flush without alerts), so what only a line needs is made
at the first line: the call's id, and the order in which the secrets are masked.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any


class CallLog:
    """Prefixes every line with a short id so the lines of one call can be found together, and
    masks the secrets it was given (webhook URLs, tokens, credentials) wherever they appear."""

    def __init__(self, engine: Any, label: str) -> None:
        self._engine = engine
        self._label = label
        #: "[label id]", drawn at the first line: every line of this call carries the same one
        self._prefix: str | None = None
        #: every value given to ``hide`` (empty ones included), in order
        self._hidden: list[str] = []
        #: the non-empty hidden values, longest first; None until a line needs them again
        self._masks: tuple[str, ...] | None = ()

    def hide(self, values: Iterable[str]) -> None:
        """Also mask these values in every later line (longest first, so none is partly shown).

        ``values`` is read now, so a generator over the caller's locals is fine."""
        self._hidden.extend(values)
        self._masks = None

    def info(self, message: str) -> None:
        self._engine.info(self._line(message))

    def warn(self, message: str) -> None:
        self._engine.warn(self._line(message))

    def error(self, message: str) -> None:
        self._engine.error(self._line(message))

    def _line(self, message: str) -> str:
        masks = self._masks
        if masks is None:
            masks = self._masks = tuple(
                sorted({v for v in self._hidden if v}, key=len, reverse=True)
            )
        for secret in masks:
            message = message.replace(secret, mask(secret))
        if self._prefix is None:
            self._prefix = f"[{self._label} {secrets.token_hex(3)}]"
        return f"{self._prefix} {message}"


def mask(secret: str) -> str:
    """``****abcd`` for long secrets, ``****`` for short ones: enough to tell two apart."""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"
