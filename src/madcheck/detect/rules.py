"""The alerting rules: small state machines fed one verdict at a time.

Each has one ``update`` method returning whether the rule fires on this verdict, and ``reset``
for rows that carry no usable value (the seed resets running counts on those).
"""

from __future__ import annotations


class CountRule:
    """Fires when ``limit`` consecutive outliers have been seen; the count then restarts."""

    __slots__ = ("limit", "run")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.run = 0

    def update(self, outlier: bool, time_ns: int) -> bool:
        if not outlier:
            self.run = 0
            return False
        self.run += 1
        if self.run >= self.limit:
            self.run = 0
            return True
        return False

    def reset(self) -> None:
        self.run = 0


class DurationRule:
    """Fires when an unbroken run of outliers spans at least ``limit_ns`` of data time.

    The span is measured from the first outlier's time to the current one, so a sustained anomaly
    alerts once per ``limit_ns``; after firing the next outlier starts a new run.
    """

    __slots__ = ("limit_ns", "started_ns")

    def __init__(self, limit_ns: int) -> None:
        self.limit_ns = limit_ns
        self.started_ns: int | None = None

    def update(self, outlier: bool, time_ns: int) -> bool:
        if not outlier:
            self.started_ns = None
            return False
        if self.started_ns is None:
            self.started_ns = time_ns
        if time_ns - self.started_ns >= self.limit_ns:
            self.started_ns = None
            return True
        return False

    def reset(self) -> None:
        self.started_ns = None


class FlipHistory:
    """The last ``size`` verdicts, to count outlier/normal transitions (flapping).

    Verdicts are bits of one integer, newest lowest, so an update is a shift and a mask however
    large the window.
    """

    __slots__ = ("_bits", "_mask", "_seen", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._bits = 0
        self._seen = 0
        self._mask = (1 << size) - 1

    def update(self, outlier: bool, repeat: int = 1) -> None:
        """Record ``repeat`` equal verdicts in a row."""
        ones = (1 << repeat) - 1 if outlier else 0
        self._bits = ((self._bits << repeat) | ones) & self._mask
        self._seen = min(self.size, self._seen + repeat)

    def transitions(self) -> int:
        """Changes between adjacent verdicts among the last ``size``."""
        if self._seen < 2:
            return 0
        pairs_mask = (1 << (self._seen - 1)) - 1
        return ((self._bits ^ (self._bits >> 1)) & pairs_mask).bit_count()
