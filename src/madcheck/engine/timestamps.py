"""Nanosecond timestamps to and from the text forms InfluxDB 3 shows and accepts.

Query results show ``time`` the way InfluxDB 3's JSON output does (Arrow's formatting of a
``Timestamp(Nanosecond, None)``): ``2026-11-29T20:00:00`` with no zone suffix, and a fraction of
3, 6 or 9 digits only when the instant is not a whole second. SQL literals are read as RFC 3339
(zone optional, UTC assumed) so ``WHERE time > '2026-11-29T20:00:00Z'`` works.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


def format_rfc3339_ns(ns: int) -> str:
    """``2026-11-29T20:00:00`` / ``...:00.500`` / ``...:00.000001`` / ``...:00.000000001``."""
    seconds, fraction = divmod(ns, _NS_PER_S)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction == 0:
        return text
    if fraction % 1_000_000 == 0:
        return f"{text}.{fraction // 1_000_000:03d}"
    if fraction % 1_000 == 0:
        return f"{text}.{fraction // 1_000:06d}"
    return f"{text}.{fraction:09d}"


def parse_timestamp_ns(text: str) -> int:
    """Read an RFC 3339 timestamp (or a plain integer of ns) into ns since the epoch.

    Raises ``ValueError`` naming the accepted forms.
    """
    stripped = text.strip()
    if re.fullmatch(r"-?\d+", stripped):
        return int(stripped)
    match = _RFC3339.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"invalid timestamp {text!r}: expected RFC 3339 such as 2026-11-29T20:00:00Z "
            "or 2026-11-29T20:00:00.5+01:00"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError as error:
        raise ValueError(f"invalid timestamp {text!r}: {error}") from None
    offset_s = 0
    if zone and zone not in "Zz":
        digits = zone[1:].replace(":", "")
        offset_s = (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * (1 if zone[0] == "+" else -1)
    whole = (moment - _EPOCH) // timedelta(seconds=1) - offset_s
    nanos = int((fraction or "").ljust(9, "0")) if fraction else 0
    return whole * _NS_PER_S + nanos
