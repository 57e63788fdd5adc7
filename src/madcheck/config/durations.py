"""Duration strings such as ``2m``, ``100ms`` or ``1h30m``.

``m`` means minutes, as in the seed's ``load:3:10:2m``; ``min`` is accepted too. Durations are
returned as integer nanoseconds because the detector compares them with row times in ns.
"""

from __future__ import annotations

import re

NS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "min": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
    "d": 86_400 * 1_000_000_000,
    "w": 7 * 86_400 * 1_000_000_000,
}

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|min|s|m|h|d|w)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def parse_duration_ns(text: str) -> int:
    """Parse ``text`` into nanoseconds; raise ``ValueError`` with the accepted units otherwise."""
    compact = text.strip().lower()
    if not _WHOLE.fullmatch(compact):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit, e.g. 30s, 2m, 1h30m "
            f"(units: {', '.join(NS_PER_UNIT)})"
        )
    total = sum(float(number) * NS_PER_UNIT[unit] for number, unit in _PART.findall(compact))
    if total <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return round(total)


def parse_duration_s(text: str) -> float:
    """Parse ``text`` into seconds (for intervals and timeouts)."""
    return parse_duration_ns(text) / 1e9


def format_duration_ns(ns: int) -> str:
    """Render ``ns`` with the largest unit that divides it, e.g. ``120s`` -> ``2m``."""
    for unit in ("w", "d", "h", "m", "s", "ms", "us"):
        size = NS_PER_UNIT[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"
