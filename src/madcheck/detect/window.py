"""An exact rolling median and MAD over the last ``size`` values, and fast exact verdicts.

The definition (DESIGN.md §3) is ``statistics.median`` of the window and the median of absolute
deviations from it; a value is an outlier iff ``value < median - k * MAD`` or
``value > median + k * MAD``. Recomputing that by sorting costs O(W log W) per point. Here the
window is also kept sorted, so:

- the median is read in O(1);
- most verdicts need no MAD at all: ``advance`` reads exact lower and upper bounds of the MAD
  from four sorted values (``_layout``), which settle clear cases; ``is_outlier`` settles most of
  the rest with one C-level bisect per side;
- large windows need not even that for most values: a band of certainly normal values, read
  from the sorted window, stays valid for the next few updates (``_normal_band``), so a normal
  value costs two comparisons;
- the exact MAD, for a value on the band's edge or for an alert, is the k-th smallest element of
  two sorted sequences (deviations left and right of the median), found by binary search in
  O(log W).

Storage is one ``array('d')`` of ``2 * size`` C doubles, allocated once: the ring of values in
arrival order, then the same values sorted. While the window fills, both are padded with +inf
(values are finite, so the padding always sorts last, and a ring slot not yet filled reads as
the padding to evict). 16 bytes per value; a window made with ``compact=True`` drops the sorted
half between batches (``compact``) and sorts its ring again when next used: 8 bytes per value.

The arithmetic is the same as the definition's (``(a + b) / 2`` for even sizes, ``abs(x - m)``
for deviations, since ``m - x == -(x - m)`` exactly in IEEE 754), and every shortcut is a proof
that the definition's comparison comes out one way (see ``is_outlier``), so verdicts are
identical. docs/performance.md explains the design and its measurements.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import cache

try:
    import numpy
except ImportError:  # pragma: no cover - sorted() does the same, slower
    numpy = None  # type: ignore[assignment]

_INF = float("inf")
#: Trial MADs of ``is_outlier``, just either side of the critical one (any factor is exact).
_WIDEN = 1.0 + 2.0**-40
_NARROW = 1.0 - 2.0**-40
#: Rounding slack of one add or subtract, over-estimated eightfold (2**-53 is half an ulp).
_SLACK = 2.0**-50
#: Below this, the mean of two deviations cannot overflow (which would break "mean <= both").
_HUGE = 2.0**1000
#: From this size on, ``advance`` moves values with a memoryview instead of del + insert.
_VIEW_FROM = 1024
#: From this size on, ``advance`` keeps a normal band valid for ``size >> _BAND_SHIFT`` updates.
_BAND_FROM = 2048
_BAND_SHIFT = 8
_NO_BAND = (_INF, -_INF, 0.0)


class RollingMAD:
    """The last ``size`` finite values of one series field, in arrival and in sorted order."""

    __slots__ = (
        "_band",
        "_band_uses",
        "_compact",
        "_count",
        "_data",
        "_layout",
        "_next",
        "_reach",
        "size",
    )

    def __init__(self, size: int, compact: bool = False) -> None:
        """``compact``: between batches keep only the ring (see ``compact``)."""
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.size = size
        self._compact = compact
        # [0, size): the ring, in arrival order; [size, 2 * size): the same values, sorted
        # (absent while compacted)
        self._data = array("d", [_INF]) * (size if compact else 2 * size)
        self._count = 0  # values held, up to size
        self._next = 0  # ring slot the next value goes to (the oldest once full)
        self._layout = _layout(size)
        # A band of certainly normal values (low, high, for the k as third item) and how many
        # more updates it covers; large windows only (see _normal_band).
        self._reach = _band_reach(size)
        self._band = _NO_BAND
        self._band_uses = 0

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._count == self.size

    def compact(self) -> None:
        """Drop the sorted half until the window is next updated or read (windows made with
        ``compact=True`` only): 8 bytes a value between batches instead of 16, for one sort of
        the ring (numpy's, if installed) at the start of the next batch."""
        if self._compact and len(self._data) > self.size:
            self._data = self._data[: self.size]

    def _expand(self) -> None:
        """Bring the sorted half back after ``compact`` (the ring's +inf padding sorts last, as
        the sorted half's own does)."""
        ring = self._data
        if numpy is not None:
            ordered = numpy.sort(numpy.frombuffer(ring, dtype=numpy.float64))
            ring.frombytes(ordered.tobytes())
        else:
            ring.extend(sorted(ring))  # type: ignore[unreachable]

    def batch_view(self) -> tuple[array[float], int]:
        """The storage (ring, then the sorted half unless compacted) and the ring slot of the
        oldest value, for a full window whose batch is judged elsewhere
        (``vectorized.WindowRun``), which writes the ring and the sorted half in place and then
        calls ``batch_pushed``. Any view of the storage must be released before the next
        ``add`` or ``advance`` (an expansion resizes it)."""
        return self._data, self._next

    def batch_pushed(self, count: int) -> None:
        """``count`` values were written in place from the oldest slot on (``batch_view``)."""
        self._next = (self._next + count) % self.size
        self._band_uses = 0  # the band was read from an earlier window

    def add(self, value: float) -> None:
        """Append a finite ``value``, evicting the oldest one once the window is full.

        ``advance`` inlines these same steps in its loop (a call per value would cost more than
        the update itself at small windows): a change here belongs there too. The property
        tests go through both, since windows fill through this method.
        """
        self._band_uses = 0  # pushes without verdicts are not counted: drop the band
        if len(self._data) == self.size:
            self._expand()
        data = self._data
        size = self.size
        slot = self._next
        old = data[slot]  # while filling: +inf, taking the place of the first +inf of padding
        i = bisect_left(data, old, size, 2 * size)
        if self._count < size:
            self._count += 1
        data[slot] = value
        self._next = slot + 1 if slot + 1 < size else 0
        j = (
            bisect_right(data, value, i, 2 * size) - 1
            if value >= old
            else bisect_right(data, value, size, i)
        )
        if size < _VIEW_FROM:
            del data[i]
            data.insert(j, value)
        else:  # what lies between the old and the new place moves one step (one memmove)
            view = memoryview(data)
            if j > i:
                view[i:j] = view[i + 1 : j + 1]
            else:
                view[j + 1 : i + 1] = view[j:i]
            data[j] = value

    def advance(
        self,
        values: Sequence[float],
        start: int,
        ks: Sequence[float],
        normals_limit: int = 0,
        passed: list[tuple[int, int]] | None = None,
        pass_limit: int = 0,
    ) -> tuple[int, int, int]:
        """Push finite ``values[start:]`` in turn, stopping after the first outlier for any ``k``
        (or after ``normals_limit`` normal verdicts, if that is not 0).

        Returns ``(end, normals, mask)``: ``values[start:end]`` were pushed; ``normals`` of them
        got a verdict (the window was full) and were inside the band for every ``k``; ``mask`` is
        the last value's verdict, bit ``i`` set if it is an outlier for ``ks[i]`` (0 if the run
        ended without one). Stopping there leaves the window as it was at that point, so the
        caller can read the exact median and MAD for an alert. No ``ks``: push, judge nothing.

        ``passed`` (an empty list) lets up to ``pass_limit`` outliers through without stopping,
        appended as ``(index, mask)``; they are not counted in ``normals``. The detector does
        that when no rule can fire on them: stopping costs more than the update at large
        windows.

        This is the detector's hot loop, so it works on local names and inlines the update and
        the common verdict. A value inside the band for the smallest ``k`` is inside it for
        every ``k`` (the band widens with ``k``): a normal value costs one verdict however many
        thresholds share the window.
        """
        if len(self._data) == self.size:
            self._expand()
        stop = len(values)
        index = start
        while index < stop and (self._count < self.size - 1 or not ks):
            self.add(values[index])  # no verdict until the window is full
            index += 1
        if index == stop:
            return index, 0, 0
        self._count = self.size  # values[index] fills the window if it is not full yet
        # Every value from here gets a verdict, and the run stops at the first outlier: all
        # values judged before it are normal, so normals are counted at the end.
        judged_from = index
        if normals_limit:
            stop = min(stop, index + normals_limit)
        data = self._data
        size = self.size
        stop_sorted = 2 * size
        slot = self._next
        k = min(ks)
        # Large windows move the values between the old and the new value's places with one
        # memmove (through a memoryview); small ones are quicker with del + insert.
        view = memoryview(data) if size >= _VIEW_FROM else None
        middle, odd, low, high, first, last = self._layout
        # the normal band (for k) holds for the values up to values[band_end]
        normal_low, normal_high, band_k = self._band
        band_end = index + self._band_uses if band_k == k else -1
        reach = self._reach
        while index < stop:
            value = values[index]
            index += 1
            # 1. Replace the oldest value (or the last +inf of padding) by the new one, in the
            # ring and in the sorted half.
            old = data[slot]
            i = bisect_left(data, old, size, stop_sorted)
            data[slot] = value
            slot = slot + 1 if slot + 1 < size else 0
            if value >= old:  # data[i + 1 : j] (all <= value) move one step down
                j = bisect_right(data, value, i, stop_sorted)
                if view is None:
                    del data[i]
                    data.insert(j - 1, value)
                else:
                    view[i : j - 1] = view[i + 1 : j]
                    data[j - 1] = value
            else:  # data[j : i] (all > value) move one step up
                j = bisect_right(data, value, size, i)
                if view is None:
                    del data[i]
                    data.insert(j, value)
                else:
                    view[j + 1 : i + 1] = view[j:i]
                    data[j] = value
            # 2. The verdict for the smallest k. A large window's normal band, while it holds,
            # settles most in two comparisons.
            if reach and index <= band_end and normal_low <= value <= normal_high:
                continue
            # Exact bounds of the MAD read from four sorted values (see _layout) settle most:
            # inside the band for the floor is normal, outside it for the ceiling is an outlier;
            # is_outlier settles the rest.
            median = data[middle] if odd else (data[middle - 1] + data[middle]) / 2
            down = median - data[low]
            up = data[high] - median
            floor = down if down < up else up
            if reach and index > band_end:
                normal_low, normal_high = _normal_band(data, size, reach, k)
                band_k = k
                band_end = index + reach
            if not (value < median - k * floor or value > median + k * floor):
                continue
            down = median - data[first]
            up = data[last] - median
            ceiling = down if down > up else up
            # (below _HUGE: the mean of two middle deviations cannot overflow past it)
            if (
                ceiling < _HUGE and (value < median - k * ceiling or value > median + k * ceiling)
            ) or self.is_outlier(value, median, k):
                mask = 0
                for bit, k_bit in enumerate(ks):
                    if k_bit == k or self.is_outlier(value, median, k_bit):
                        mask |= 1 << bit
                if passed is not None and len(passed) < pass_limit:
                    passed.append((index - 1, mask))
                    continue
                self._next = slot
                if reach:
                    self._keep_band(normal_low, normal_high, band_k, band_end - index)
                through = len(passed) if passed is not None else 0
                return index, index - 1 - judged_from - through, mask
        self._next = slot
        if reach:
            self._keep_band(normal_low, normal_high, band_k, band_end - index)
        through = len(passed) if passed is not None else 0
        return index, index - judged_from - through, 0

    def _keep_band(self, low: float, high: float, k: float, uses: int) -> None:
        self._band = (low, high, k)
        self._band_uses = uses if uses > 0 else 0

    def median(self) -> float:
        n = self._count
        if n == 0:
            raise ValueError("median of an empty window")
        if len(self._data) == self.size:
            self._expand()
        middle = self.size + n // 2
        if n % 2:
            return self._data[middle]
        return (self._data[middle - 1] + self._data[middle]) / 2

    def median_and_mad(self) -> tuple[float, float]:
        """The window's median and median absolute deviation, exactly as defined."""
        median = self.median()
        n = self._count
        half = n // 2
        if n % 2:
            mad, _ = self._deviation_pair(median, half)
            return median, mad
        lower, upper = self._deviation_pair(median, half - 1)
        return median, (lower + upper) / 2

    def is_outlier(self, value: float, median: float, k: float) -> bool:
        """``value < median - k * MAD or value > median + k * MAD`` for the current window.

        Why this is exact without the MAD: write ``V(m)`` for the verdict with MAD ``m``. Float
        rounding is monotone, so ``V`` can only go from True to False as ``m`` grows. Try a MAD
        ``hi`` just above the critical ``|value - median| / k``: if ``V(hi)`` is False and the MAD
        is at least ``hi``, the verdict is False. Likewise with ``lo`` just below: ``V(lo)`` True
        and MAD at most ``lo`` give True. The MAD is the median of the deviations, so "MAD >= hi"
        follows from at most ``(n - 1) // 2`` values lying within ``hi`` of the median (then the
        middle deviation, or both middle ones and so their mean, are >= hi), and "MAD <= lo"
        from at least ``n // 2 + 1`` lying within ``lo``. Sorted values within a distance of the
        median are contiguous, so one bisect and one look-up count them. The distance is widened
        (for ``hi``) or narrowed (for ``lo``) by more than rounding in ``median +- reach`` and in
        ``abs(x - median)`` can move a value across, so the counts are safe bounds. When neither
        test concludes, which takes a value within ~1e-12 of the band's edge or an even window
        whose two middle deviations straddle it, the MAD is computed exactly.
        """
        deviation = abs(value - median)
        if deviation == 0.0:
            return False  # V(m) is False for every m >= 0
        if len(self._data) == self.size:
            self._expand()
        data = self._data
        start = self.size
        n = self._count
        end = start + n
        critical = deviation / k

        hi = critical * _WIDEN
        if not (value < median - k * hi or value > median + k * hi):
            reach = hi + (abs(median) + hi) * _SLACK
            after = bisect_right(data, median + reach, start, end)
            # at most (n - 1) // 2 within reach <=> none of data[first:after] is below the reach
            first = after - (n - 1) // 2
            if first <= start or data[first - 1] < median - reach:
                return False

        lo = critical * _NARROW
        if value < median - k * lo or value > median + k * lo:
            reach = lo - (abs(median) + lo) * _SLACK
            if 0.0 <= reach < _HUGE:
                after = bisect_right(data, median + reach, start, end)
                # at least n // 2 + 1 within reach <=> data[first] is not below the reach
                first = after - (n // 2 + 1)
                if first >= start and data[first] >= median - reach:
                    return True

        _, mad = self.median_and_mad()
        return value < median - k * mad or value > median + k * mad

    def values(self) -> list[float]:
        """The values in arrival order, oldest first."""
        ring = self._data[: self.size]
        if self._count < self.size:
            return list(ring[: self._count])
        return list(ring[self._next :]) + list(ring[: self._next])

    def _deviation_pair(self, median: float, rank: int) -> tuple[float, float]:
        """The ``rank``-th and ``rank + 1``-th smallest absolute deviations (0-based).

        Deviations left of the median, read outwards, are increasing (``left(i)``), and so are
        those right of it (``right(j)``); we binary-search how many of the ``rank + 1`` smallest
        come from the left.
        """
        data = self._data
        start = self.size
        end = start + self._count
        split = bisect_left(data, median, start, end)
        n_left, n_right = split - start, end - split
        take = rank + 1
        low, high = max(0, take - n_right), min(take, n_left)
        while low < high:
            i = (low + high) // 2
            j = take - i
            # left(i) < right(j - 1): the partition needs more deviations from the left
            if median - data[split - 1 - i] < data[split + j - 1] - median:
                low = i + 1
            else:
                high = i
        i, j = low, take - low
        kth = max(
            median - data[split - i] if i > 0 else -1.0,
            data[split + j - 1] - median if j > 0 else -1.0,
        )
        after = min(
            median - data[split - 1 - i] if i < n_left else _INF,
            data[split + j] - median if j < n_right else _INF,
        )
        return kth, after


def _band_reach(size: int) -> int:
    """For how many updates ``advance`` reuses a normal band: 0 (never) for small windows, whose
    band would be too loose to settle anything; never so far that ``_normal_band`` reads past
    the sorted half."""
    if size < _BAND_FROM:
        return 0
    _, _, low, high, _, _ = _layout(size)
    return min(size >> _BAND_SHIFT, low - size, 2 * size - 1 - high)


def _normal_band(data: array[float], size: int, reach: int, k: float) -> tuple[float, float]:
    """Values certainly normal for ``k`` in this full window and after each of the next
    ``reach`` updates (each update: the oldest value out, a new one in).

    Why: removing one value and inserting one moves the r-th smallest by at most one place, so
    after t updates it lies between the (r - t)-th and (r + t)-th smallest of today's sorted
    window. That bounds the median (``lowest``, ``highest``: both middle values for even sizes,
    whose mean is monotone in each) and the sorted values ``_layout`` reads the floor of the MAD
    from, hence the floor itself (``floor``, never above any of those floors, so never above the
    MAD). Every step is a float operation monotone in its inputs, as is the verdict's
    ``median - k * mad``, so a value at or above ``highest - k * floor`` is at or above the lower
    edge of the band for every window within reach, and likewise for the upper edge. A NaN (from
    overflow to infinities of opposite signs) fails both comparisons: no value is settled.
    """
    middle, odd, low, high, _, _ = _layout(size)
    if odd:
        lowest, highest = data[middle - reach], data[middle + reach]
    else:
        lowest = (data[middle - 1 - reach] + data[middle - reach]) / 2
        highest = (data[middle - 1 + reach] + data[middle + reach]) / 2
    down = lowest - data[low + reach]
    up = data[high - reach] - highest
    floor = down if down < up else up
    return highest - k * floor, lowest + k * floor


@cache
def _layout(size: int) -> tuple[int, bool, int, int, int, int]:
    """Where ``advance`` reads a full window of ``size`` values (indexes into ``_data``):
    ``middle`` (and ``odd``) for the median, ``low``/``high`` for the floor of the MAD and
    ``first``/``last`` for its ceiling.

    Bounds of the MAD from sorted values around the quartiles, exact because deviations
    are computed as in the definition and rounding is monotone: a value at or below
    data[low] deviates from the median at least as much as data[low] does, one at or above
    data[high] at least as much as data[high].
    - floor: only (size - 1) // 2 values lie strictly between data[low] and data[high], so
      at most that many deviations are below the smaller of the two: floor <= the middle
      deviation(s), i.e. <= the MAD.
    - ceiling: the size // 2 + 1 values from data[first] to data[last] deviate at most as
      much as the farther of the two: ceiling >= the middle deviation(s) and the MAD.
    The band only widens as the MAD grows, so a value inside it for the floor is normal,
    and one outside it for the ceiling is an outlier. Values in between go to is_outlier.
    """
    middle = size + (size >> 1)
    odd = bool(size & 1)
    low = size + (size - 1) // 2 - ((size - 1) // 2 + 2) // 2
    high = low + (size - 1) // 2 + 1
    if low < size:  # windows of 1 or 2: the lowest and the highest value
        low, high = size, 2 * size - 1
    first = size + (size - (size // 2 + 1)) // 2
    last = first + size // 2
    return middle, odd, low, high, first, last
