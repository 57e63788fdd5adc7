"""Duration strings such as ``2m``, ``100ms`` or ``1h30m``.

``m`` means minutes, as in the seed's ``load:3:10:2m``; ``min`` is accepted too. Durations are
returned as integer nanoseconds because the detector compares them with row times in ns.
"""

from __future__ import annotations

import math
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

_MAX_NS = 100 * 366 * NS_PER_UNIT["d"]
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
    if not math.isfinite(total) or total > _MAX_NS:
        raise ValueError(f"invalid duration {text!r}: longer than 100 years")
    if round(total) <= 0:
        raise ValueError(f"invalid duration {text!r}: must be at least 1ns")
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


def parse_seconds(text: str) -> float:
    """A wait or timeout in seconds: a duration (``250ms``, ``2s``) or a bare number of seconds.

    Unlike ``parse_duration_ns`` this accepts ``0``: no wait at all is a useful setting (tests,
    backfills).
    """
    compact = text.strip()
    try:
        seconds = float(compact)
    except ValueError:
        return parse_duration_s(compact)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {text!r}: must be a finite, non-negative number")
    if seconds * NS_PER_UNIT["s"] > _MAX_NS:
        raise ValueError(f"invalid duration {text!r}: longer than 100 years")
    return seconds


def parse_backoff_range(text: str) -> tuple[float, float]:
    """``1s..4s``: the range a randomized pause is drawn from; one value is a fixed pause."""
    low_text, separator, high_text = text.partition("..")
    low = parse_seconds(low_text)
    high = parse_seconds(high_text) if separator else low
    if high < low:
        raise ValueError(f"invalid range {text!r}: the upper bound is below the lower one")
    return low, high
