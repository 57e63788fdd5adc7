"""The ``mad_thresholds`` argument: ``field:k:window_count:threshold[:level]`` conditions joined
by ``@``.

The value reaches the plugin in several spellings, because the seed's own example quotes ``k``
inside an already quoted shell word: ``temp:2.5:20:5@load:3:10:2m``, ``temp:"2.5":20:5``,
``'temp:2.5:20:5'``. All are accepted. A TOML file may instead give a list of
``[field, k, window_count, threshold]`` lists (a fifth element is the level). A bad condition is
reported and skipped so the good ones still run.

The parts are split from the right, because a field name may itself contain ``:``. A level is
recognised by its word alone: when the last part is ``info``, ``warning`` or ``critical`` it is
the level, otherwise the condition has the default level ``warning``. This cannot be ambiguous:
a threshold is a whole number or a duration, and neither can be one of those words. So
``a:b:3:9:2`` is field ``a:b`` at the default level, ``a:b:3:9:2:critical`` the same at
``critical``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from madcheck.config.durations import format_duration_ns, parse_duration_ns
from madcheck.config.quoting import unquote

MIN_WINDOW = 2
MAX_WINDOW = 100_000
#: severity levels, lowest first; a condition without one is ``warning``
LEVELS = ("info", "warning", "critical")
DEFAULT_LEVEL = "warning"
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Threshold:
    """One monitored condition on one field.

    Exactly one of ``count`` (consecutive outliers) and ``duration_ns`` (length of an unbroken
    outlier run, on data time) is set.
    """

    field: str
    k: float
    window_count: int
    count: int | None = None
    duration_ns: int | None = None
    severity: str = DEFAULT_LEVEL
    #: The band is never narrower than ``k * mad_floor`` on each side (``mad_floor`` argument),
    #: nor than ``k * mad_floor_pct / 100 * |median|``; 0 for both is the plain definition.
    mad_floor: float = 0.0
    mad_floor_pct: float = 0.0

    @property
    def has_floor(self) -> bool:
        return self.mad_floor > 0 or self.mad_floor_pct > 0

    def effective_mad(self, median: float, mad: float) -> float:
        """The MAD the band is drawn with: ``max(mad, mad_floor, mad_floor_pct% of |median|)``."""
        return max(mad, self.mad_floor, self.mad_floor_pct / 100 * abs(median))

    def beyond_floor(self, value: float, median: float) -> bool:
        """Whether ``value`` lies outside the band drawn with the floor alone.

        With ``max`` the band is the wider of the MAD's band and the floor's (both centred on
        the median, and float rounding is monotone), so a value is an outlier exactly when it
        is outside both: the detector's plain verdict and this test.
        """
        floor = max(self.mad_floor, self.mad_floor_pct / 100 * abs(median))
        return value < median - self.k * floor or value > median + self.k * floor

    @property
    def rule(self) -> str:
        return "count" if self.count is not None else "duration"

    @property
    def threshold_text(self) -> str:
        """The threshold as a user would write it: ``5`` or ``2m``."""
        if self.count is not None:
            return str(self.count)
        assert self.duration_ns is not None
        return format_duration_ns(self.duration_ns)

    @property
    def rank(self) -> int:
        """The severity's place in ``LEVELS``: a higher rank outranks a lower one."""
        return LEVEL_RANK[self.severity]

    def describe(self) -> str:
        """The condition as written, its level only when it is not the default."""
        level = "" if self.severity == DEFAULT_LEVEL else f":{self.severity}"
        return f"{self.field}:{self.k:g}:{self.window_count}:{self.threshold_text}{level}"

    @property
    def condition(self) -> tuple[str, float, int, str]:
        """What the condition tests, whatever its level: two conditions alike in this are one."""
        return (self.field, self.k, self.window_count, self.threshold_text)


class ThresholdError(ValueError):
    """A condition that cannot be used; the message says what is wrong and how to write it."""


def _parse_k(raw: object) -> float:
    if isinstance(raw, bool):
        raise ThresholdError(f"k must be a number, got {raw!r}")
    try:
        k = float(unquote(raw) if isinstance(raw, str) else raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ThresholdError(f"k must be a number, got {raw!r}") from None
    if not math.isfinite(k) or k <= 0:
        raise ThresholdError(f"k must be a positive number, got {raw!r}")
    return k


def _parse_window(raw: object) -> int:
    text = unquote(raw) if isinstance(raw, str) else raw
    if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
        raise ThresholdError(f"window_count must be a whole number, got {raw!r}")
    try:
        window: int = int(text)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ThresholdError(f"window_count must be a whole number, got {raw!r}") from None
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ThresholdError(
            f"window_count must be between {MIN_WINDOW} and {MAX_WINDOW}, got {window}"
        )
    return window


def _parse_limit(raw: object) -> tuple[int | None, int | None]:
    """A whole number is a count threshold; anything else must be a duration."""
    if isinstance(raw, bool):
        raise ThresholdError(f"threshold must be a count or a duration, got {raw!r}")
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, float) and raw.is_integer():  # TOML ``5.0``
        text = str(int(raw))
    elif isinstance(raw, str):
        text = unquote(raw)
    else:
        raise ThresholdError(f"threshold must be a count or a duration, got {raw!r}")
    if text.isascii() and text.isdigit():
        count = int(text)
        if count < 1:
            raise ThresholdError("a count threshold must be at least 1")
        return count, None
    try:
        return None, parse_duration_ns(text)
    except ValueError as error:
        raise ThresholdError(
            f"threshold must be a count (e.g. 5) or a duration (e.g. 2m), got {raw!r}"
        ) from error


def level_of(raw: object) -> str | None:
    """``raw`` as a severity level (``Critical`` and ``"critical"`` too), or None."""
    if not isinstance(raw, str):
        return None
    text = unquote(raw).strip().lower()
    return text if text in LEVEL_RANK else None


def threshold_from_parts(parts: Sequence[object]) -> Threshold:
    """Build a ``Threshold`` from ``[field, k, window_count, threshold]`` or the same with a
    fifth element, the level."""
    if len(parts) == 5:
        level = level_of(parts[4])
        if level is None:
            raise ThresholdError(
                f"the level must be one of {', '.join(LEVELS)}, got {_shorten(parts[4])!r}"
            )
        parts = parts[:4]
    else:
        level = DEFAULT_LEVEL
    if len(parts) != 4:
        raise ThresholdError(
            "expected field:k:window_count:threshold[:level] (4 parts, or 5 with a level), "
            f"got {len(parts)} part(s)"
        )
    raw_field, raw_k, raw_window, raw_limit = parts
    field = unquote(raw_field) if isinstance(raw_field, str) else ""
    if not field:
        raise ThresholdError("the field name is empty")
    count, duration_ns = _parse_limit(raw_limit)
    return Threshold(field, _parse_k(raw_k), _parse_window(raw_window), count, duration_ns, level)


def split_condition(segment: str) -> list[str]:
    """A condition string's parts, split from the right (the field may contain ``:``): five
    when the last part is a level word, otherwise four."""
    head, _, last = segment.rpartition(":")
    if head and level_of(last) is not None:
        return [*head.rsplit(":", 3), last]
    return segment.rsplit(":", 3)


def parse_thresholds(value: object) -> tuple[list[Threshold], list[str]]:
    """Parse every condition, returning the usable ones and one problem message per bad one.

    ``value`` is the trigger argument (a string) or a TOML value (a list of 4-item lists, or a
    list of condition strings).
    """
    if isinstance(value, str):
        segments: list[object] = list(unquote(value).split("@"))
    elif isinstance(value, list):
        segments = list(value)
    else:
        return [], [f"mad_thresholds must be a string or a list, got {type(value).__name__}"]

    thresholds: list[Threshold] = []
    problems: list[str] = []
    for position, segment in enumerate(segments, start=1):
        try:
            if isinstance(segment, str):
                segment = segment.strip()
                if not segment:
                    raise ThresholdError("the condition is empty")
                threshold = threshold_from_parts(split_condition(segment))
            elif isinstance(segment, list | tuple):
                threshold = threshold_from_parts(segment)
            else:
                raise ThresholdError(f"expected a string or a list, got {segment!r}")
        except ThresholdError as error:
            problems.append(f"condition {position} ({_shorten(segment)}) skipped: {error}")
            continue
        twin = next((t for t in thresholds if t.condition == threshold.condition), None)
        if twin is not None:
            again = "duplicate" if twin == threshold else f"the same condition as {twin.describe()}"
            problems.append(f"condition {position} ({threshold.describe()}) skipped: {again}")
            continue
        thresholds.append(threshold)
    return thresholds, problems


def _shorten(segment: object, limit: int = 60) -> str:
    text = segment if isinstance(segment, str) else repr(segment)
    return text if len(text) <= limit else text[: limit - 3] + "..."
