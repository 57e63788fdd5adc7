"""An exact rolling median and MAD over the last ``size`` values.

The definition (DESIGN.md §3) is ``statistics.median`` of the window and the median of absolute
deviations from it. Recomputing that by sorting costs O(W log W) per point; here the window is also
kept sorted, so the median is read in O(1) and the MAD is the k-th smallest element of two sorted
sequences (deviations left and right of the median), found by binary search in O(log W). Values
are stored as C doubles in ``array`` objects: 16 bytes per retained value.

The arithmetic is the same as the definition's (``(a + b) / 2`` for even sizes, ``abs(x - m)``
for deviations, since ``m - x == -(x - m)`` exactly in IEEE 754), so verdicts are identical.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort


class RollingMAD:
    """The last ``size`` values of one series field, in arrival and in sorted order."""

    __slots__ = ("_oldest", "_ring", "_sorted", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.size = size
        self._ring = array("d")
        self._sorted = array("d")
        self._oldest = 0

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def full(self) -> bool:
        return len(self._ring) == self.size

    def add(self, value: float) -> None:
        """Append ``value``, evicting the oldest one once the window is full."""
        ring = self._ring
        ordered = self._sorted
        if len(ring) < self.size:
            ring.append(value)
        else:
            oldest = self._oldest
            del ordered[bisect_left(ordered, ring[oldest])]
            ring[oldest] = value
            self._oldest = oldest + 1 if oldest + 1 < self.size else 0
        insort(ordered, value)

    def median(self) -> float:
        ordered = self._sorted
        n = len(ordered)
        if n == 0:
            raise ValueError("median of an empty window")
        half = n // 2
        if n % 2:
            return ordered[half]
        return (ordered[half - 1] + ordered[half]) / 2

    def median_and_mad(self) -> tuple[float, float]:
        """The window's median and median absolute deviation."""
        median = self.median()
        n = len(self._sorted)
        half = n // 2
        if n % 2:
            mad, _ = self._deviation_pair(median, half)
            return median, mad
        lower, upper = self._deviation_pair(median, half - 1)
        return median, (lower + upper) / 2

    def values(self) -> list[float]:
        """The values in arrival order, oldest first."""
        ring = self._ring
        if len(ring) < self.size:
            return list(ring)
        return list(ring[self._oldest :]) + list(ring[: self._oldest])

    def _deviation_pair(self, median: float, rank: int) -> tuple[float, float]:
        """The ``rank``-th and ``rank + 1``-th smallest absolute deviations (0-based).

        Deviations left of the median, read outwards, are increasing (``left(i)``), and so are
        those right of it (``right(j)``); we binary-search how many of the ``rank + 1`` smallest
        come from the left.
        """
        ordered = self._sorted
        n = len(ordered)
        split = bisect_left(ordered, median)
        n_left, n_right = split, n - split
        take = rank + 1
        low, high = max(0, take - n_right), min(take, n_left)
        while low < high:
            i = (low + high) // 2
            j = take - i
            # left(i) < right(j - 1): the partition needs more deviations from the left
            if median - ordered[split - 1 - i] < ordered[split + j - 1] - median:
                low = i + 1
            else:
                high = i
        i, j = low, take - low
        kth = max(
            median - ordered[split - i] if i > 0 else -1.0,
            ordered[split + j - 1] - median if j > 0 else -1.0,
        )
        after = min(
            median - ordered[split - 1 - i] if i < n_left else float("inf"),
            ordered[split + j] - median if j < n_right else float("inf"),
        )
        return kth, after
