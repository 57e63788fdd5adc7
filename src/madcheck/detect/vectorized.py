"""Small windows of every series of a table judged together, a whole batch at once, with numpy.

Per point, the interpreted work of ``RollingMAD.advance`` (two bisects, an insert, a verdict) costs
about 2 µs, which caps a flush near 500,000 rows/s. For small windows the verdicts of a whole
batch are cheaper computed from scratch in C: every new value's window is a row of one matrix,
sorted row by row; its median is read from the middle, and the exact lower bound of the MAD of
``RollingMAD``'s ``_layout`` settles most values as normal. Only the rest get their MAD computed
(the absolute deviations, sorted row by row): the definition itself, in the same float
operations (``(a + b) / 2`` for the two middle values of an even window, as ``statistics.median``
computes it, overflow to infinity included; ``abs(x - m)`` for deviations).

State is one matrix per window group: row ``i`` holds series ``i``'s last ``size`` values, oldest
first (NaN where the window is not yet full), and a count of values held. That is 8 bytes a value
(the sorted copy of ``RollingMAD`` is not needed: each batch sorts its own windows).

numpy is optional: without it (or with ``MADCHECK_PURE_PYTHON=1`` in the environment) the
detector keeps a ``RollingMAD`` per series, which gives the same verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

try:
    import numpy
    from numpy.lib.stride_tricks import sliding_window_view
except ImportError:  # pragma: no cover - exercised by the pure-Python runs of the tests
    numpy = None  # type: ignore[assignment]

# the exactness constants of RollingMAD (trial MADs, rounding slack, overflow bound) serve here
# unchanged, so the two paths' shortcuts rest on the same proofs
from madcheck.detect.window import _HUGE, _INF, _NARROW, _SLACK, _WIDEN, _layout

#: Windows up to this size are judged by ``SeriesBlock``; larger ones keep a ``RollingMAD`` per
#: series (a batch's windows would be a matrix of size by rows values, and the sorted window
#: that ``RollingMAD`` keeps makes each update O(log size) there).
BLOCK_MAX_WINDOW = 128
#: Larger windows up to this size keep only their ring between batches when numpy is there
#: (``RollingMAD.compact``): numpy sorts 4,096 values in well under 100 µs, once per batch.
COMPACT_MAX_WINDOW = 4096


def available() -> bool:
    """Whether the numpy path can be used (numpy installed and not switched off)."""
    return numpy is not None and os.environ.get("MADCHECK_PURE_PYTHON", "") in ("", "0")


class SeriesBlock:
    """The last ``size`` values of every series of one window group, one matrix row a series."""

    __slots__ = ("_count", "_values", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._values = numpy.full((0, size), numpy.nan)
        self._count = numpy.zeros(0, dtype=numpy.intp)

    def reserve(self, rows: int) -> None:
        """Make room for series ``0 .. rows - 1`` (new rows empty)."""
        have = len(self._count)
        if rows <= have:
            return
        grown = max(rows, have + (have >> 3))
        values = numpy.full((grown, self.size), numpy.nan)
        values[:have] = self._values
        count = numpy.zeros(grown, dtype=numpy.intp)
        count[:have] = self._count
        self._values, self._count = values, count

    def held(self, row: int) -> int:
        return int(self._count[row])

    def values(self, row: int) -> list[float]:
        """Series ``row``'s values in arrival order, oldest first."""
        held = int(self._count[row])
        return [float(x) for x in self._values[row, self.size - held :]] if held else []

    def add(self, row: int, value: float) -> None:
        """Append one value to series ``row`` (warm start; batches go through ``judge``)."""
        line = self._values[row]
        line[:-1] = line[1:]
        line[-1] = value
        if self._count[row] < self.size:
            self._count[row] += 1

    def judge(self, rows: Any, counts: Any, values: Any, ks: Sequence[float]) -> tuple[Any, Any]:
        """Push a batch and judge every new value.

        ``rows``: the series (matrix rows) of the batch, increasing; ``counts``: how many new
        values each has (at least one); ``values``: those values, series after series, each
        series' in time order. Returns ``(codes, ordered)``: per value -1 (its window is not yet
        full) or a bit per ``k`` set if it is an outlier for that ``k``; and per value with a
        verdict, its window sorted (for an alert's median and MAD), in the same order.
        """
        size = self.size
        series = len(rows)
        total = len(values)
        longest = int(counts.max())
        every = series == len(self._count) and int(rows[-1]) == series - 1
        before = self._count.copy() if every else self._count[rows]
        # One line per series: its held values, then its new ones (padded to the longest), so
        # that a value's window is a slice of its line.
        extended = numpy.empty((series, size + longest))
        extended[:, :size] = self._values if every else self._values[rows]
        uniform = longest * series == total  # every series has as many new values
        if uniform:
            extended[:, size:] = values.reshape(series, longest)
            tails: Any = extended[:, longest:]
        else:
            owner = numpy.repeat(numpy.arange(series), counts)
            position = numpy.arange(total) - (numpy.cumsum(counts) - counts)[owner]
            extended[owner, position + size] = values
            starts = numpy.arange(series) * (size + longest) + counts
            tails = extended.reshape(-1)[starts[:, None] + numpy.arange(size)]
        if every:
            self._values[:] = tails
        else:
            self._values[rows] = tails
        held = numpy.minimum(before + counts, size)
        if every:
            self._count[:] = held
        else:
            self._count[rows] = held

        windows = sliding_window_view(extended, size, axis=1)[:, 1:]  # (series, longest, size)
        if uniform:
            full = (before[:, None] + numpy.arange(1, longest + 1) >= size).reshape(total)
        else:
            full = before[owner] + position + 1 >= size
        if (
            uniform
            and size >= _SETTLE_FROM
            and longest * _SETTLE_SHARE <= size
            and bool((before >= size).all())
        ):
            # every window full from the start, and few new values: most are settled without
            # their window sorted
            return self._settle(windows, extended[:, :size], values.reshape(series, longest), ks)
        if bool(full.all()):
            judged = None
            if uniform:  # sorted straight from the strided view: no copy of the windows first
                ordered = numpy.sort(windows, axis=2).reshape(total, size)
            else:
                ordered = numpy.sort(windows[owner, position], axis=1)
        else:
            judged = numpy.flatnonzero(full)
            chosen = (
                windows[judged // longest, judged % longest]
                if uniform
                else windows[owner[judged], position[judged]]
            )
            ordered = numpy.sort(chosen, axis=1)
        new = values if judged is None else values[judged]
        masks = numpy.zeros(len(new), dtype=numpy.int64)
        if len(new):
            with numpy.errstate(all="ignore"):  # overflow gives inf as in Python; no warnings
                self._masks(ordered, new, ks, masks)
        if judged is None:
            return masks, ordered
        codes = numpy.full(total, -1, dtype=numpy.int64)
        codes[judged] = masks
        return codes, ordered

    def _settle(self, windows: Any, held: Any, new: Any, ks: Sequence[float]) -> tuple[Any, Any]:
        """``judge`` for full windows (``held``, oldest first) and as many new values each
        (``new``), at most ``1 / _SETTLE_SHARE`` of a window: the held windows are sorted once
        and the bounds of every window of the batch read from them (``_order_bounds``, as for
        ``WindowRuns``); only the values they leave unsure get their window sorted and the
        definition computed (``_masks``). The windows of the rest are sorted when read."""
        size = self.size
        longest = new.shape[1]
        columns = numpy.ascontiguousarray(numpy.sort(held, axis=1).T)
        candidates = _candidates(columns, size, longest)
        with numpy.errstate(all="ignore"):  # overflow gives inf as in Python; no warnings
            new_t = numpy.ascontiguousarray(new.T)
            evicted_t = numpy.ascontiguousarray(held[:, :longest].T)
            bounds = _order_bounds(candidates, new_t, evicted_t, None)
            masks_t, unsure_t, _, _ = _band_verdicts(bounds, new_t, ks, bool(size & 1))
            masks, unsure = masks_t.T.copy(), unsure_t.T
            masks = masks.reshape(-1)
            chosen = numpy.flatnonzero(unsure)
            if len(chosen):
                ordered = numpy.sort(windows[chosen // longest, chosen % longest], axis=1)
                found = numpy.zeros(len(chosen), dtype=numpy.int64)
                self._masks(ordered, new.reshape(-1)[chosen], ks, found)
                masks[chosen] = found
        return masks, _SortedOnRead(windows)

    def _masks(self, ordered: Any, new: Any, ks: Sequence[float], masks: Any) -> None:
        """Verdicts of ``new`` against its sorted windows ``ordered``, into ``masks``."""
        size = self.size
        middle, odd, low, high, _, _ = _layout(size)
        middle, low, high = middle - size, low - size, high - size
        median = ordered[:, middle] if odd else (ordered[:, middle - 1] + ordered[:, middle]) / 2
        # The exact lower bound of the MAD (RollingMAD._layout): inside its band for the
        # smallest k is normal for every k; the rest get their exact MAD.
        floor = numpy.minimum(median - ordered[:, low], ordered[:, high] - median)
        k = min(ks)
        unsure = numpy.flatnonzero((new < median - k * floor) | (new > median + k * floor))
        if not len(unsure):
            return
        median = median[unsure]
        value = new[unsure]
        # the window's values in any order have the same deviations: take the sorted ones
        deviations = numpy.abs(ordered[unsure] - median[:, None])
        deviations.sort(axis=1)
        half = size >> 1
        mad = deviations[:, half] if odd else (deviations[:, half - 1] + deviations[:, half]) / 2
        found = numpy.zeros(len(unsure), dtype=numpy.int64)
        for bit, k_bit in enumerate(ks):
            outlier = (value < median - k_bit * mad) | (value > median + k_bit * mad)
            found |= outlier.astype(numpy.int64) << bit
        masks[unsure] = found

    def judge_one(self, row: int, value: float, ks: Sequence[float]) -> tuple[int, list[float]]:
        """``judge`` for one value of series ``row`` (a one-row flush): its code and, if its
        window is full, that window sorted (else an empty list). No list of series, counts or
        codes: a handful of numpy element operations and one sort."""
        size = self.size
        stored = self._values[row]
        line = stored.tolist()
        stored[:-1] = stored[1:]
        stored[-1] = value
        held = int(self._count[row])
        if held < size:
            self._count[row] = held + 1
            if held + 1 < size:
                return -1, []
        del line[0]
        line.append(value)
        line.sort()
        return _code(line, value, ks, _layout(size)), line

    def judge_few(
        self,
        rows: Sequence[int],
        counts: Sequence[int],
        values: Sequence[float],
        ks: Sequence[float],
    ) -> tuple[list[int], list[list[float]]]:
        """``judge`` for a handful of values, in plain Python: numpy's fixed cost per call
        (about 1 µs, some twenty calls) is more than sorting a few small windows."""
        size = self.size
        layout = _layout(size)
        codes: list[int] = []
        ordered: list[list[float]] = []
        done = 0
        for row, count in zip(rows, counts, strict=True):
            held = int(self._count[row])
            line = self._values[row].tolist()
            if held < size:
                del line[: size - held]
            for value in values[done : done + count]:
                line.append(value)
                if len(line) > size:
                    del line[0]
                elif len(line) < size:
                    codes.append(-1)
                    continue
                window = sorted(line)
                ordered.append(window)
                codes.append(_code(window, value, ks, layout))
            stored = self._values[row]
            if count < size:  # shift in place: cheaper than writing back the whole line
                stored[: size - count] = stored[count:]
                stored[size - count :] = values[done : done + count]
            else:
                stored[:] = line
            done += count
            self._count[row] = len(line)
        return codes, ordered


def _code(window: list[float], value: float, ks: Sequence[float], layout: tuple[int, ...]) -> int:
    """The verdict code of ``value`` on its full window, sorted (``judge``'s codes), with
    ``_layout(len(window))``: as in ``_masks``, the exact lower bound of the MAD settles most
    values as normal; the rest get the definition (``sorted_median_and_mad``)."""
    size = len(window)
    middle, odd, low, high = layout[0] - size, layout[1], layout[2] - size, layout[3] - size
    median = window[middle] if odd else (window[middle - 1] + window[middle]) / 2
    down = median - window[low]
    up = window[high] - median
    floor = down if down < up else up
    k = min(ks)
    if not (value < median - k * floor or value > median + k * floor):
        return 0
    median, mad = sorted_median_and_mad(window)
    return sum(
        1 << bit
        for bit, k_bit in enumerate(ks)
        if value < median - k_bit * mad or value > median + k_bit * mad
    )


class _SortedOnRead:
    """The sorted window of each value of a batch (``SeriesBlock._settle``), sorted when read
    (by an alert, or a MAD floor's median): ``windows[series, t]`` of the strided view."""

    __slots__ = ("_windows",)

    def __init__(self, windows: Any) -> None:
        self._windows = windows

    def __getitem__(self, at: int) -> Any:
        longest = self._windows.shape[1]
        return numpy.sort(self._windows[at // longest, at % longest])


def sorted_median(window: list[float]) -> float:
    """Median of a sorted window, in ``statistics.median``'s arithmetic."""
    n = len(window)
    half = n >> 1
    return window[half] if n & 1 else (window[half - 1] + window[half]) / 2


def sorted_median_and_mad(window: list[float]) -> tuple[float, float]:
    """Median and MAD of a sorted window, in ``statistics.median``'s arithmetic (DESIGN.md §3)."""
    n = len(window)
    half = n >> 1
    median = window[half] if n & 1 else (window[half - 1] + window[half]) / 2
    deviations = sorted([abs(x - median) for x in window])
    mad = deviations[half] if n & 1 else (deviations[half - 1] + deviations[half]) / 2
    return median, mad


#: A full ``RollingMAD`` window (larger than ``BLOCK_MAX_WINDOW``) judges a batch together with
#: the rest of its group (``WindowRuns``) when it brings it at least this many values (and at
#: most a quarter of its size: see the detector): with fewer, the numpy calls cost more than
#: ``RollingMAD.advance``'s 2 µs a point.
RUN_MIN = 48
#: Passes of ``_order_bounds`` (each tightens the bounds; the first holds already); one only
#: for batches of up to ``_ONE_PASS_UP_TO`` values a window (more would settle few more).
_PASSES = 3
_ONE_PASS_UP_TO = 16
#: ``WindowRuns._count_unsure`` takes at most this many (value, update) pairs at a time.
_COUNT_BUDGET = 1 << 21
#: ``WindowRuns`` hands a window back when more than this many of its values, and more than
#: this share of them, are left for the definition (a window rebuilt each, O(size)): so that
#: values made to sit on the band's edge cost no more than ``RollingMAD.advance`` would.
_HAND_BACK_OVER = 4
_HAND_BACK_SHARE = 8
#: ``SeriesBlock.judge`` settles most values without sorting their windows when the windows
#: hold at least ``_SETTLE_FROM`` values and the batch is at most ``1 / _SETTLE_SHARE`` of them
#: (``SeriesBlock._settle``): below, sorting every window costs less than the bounds; above,
#: the bounds settle too few.
_SETTLE_FROM = 72
_SETTLE_SHARE = 4


class WindowRuns:
    """Full windows of one size, each with a batch of new values (at most the window's size),
    judged together without a step per value.

    Write ``S`` for a window sorted at the start, ``R_t`` for the first ``t`` values its batch
    evicts and ``I_t`` for its first ``t`` new values: after ``t`` updates the window is
    ``S - R_t + I_t`` (multisets), so for any ``y``::

        #{window_t <= y} = #{S <= y} - #{R_t <= y} + #{I_t <= y}

    which bounds every order statistic of every window of the batch from ``S`` and running
    counts (``_order_bounds``). The bounds of the median and of the four sorted values
    ``RollingMAD`` reads its MAD's floor and ceiling from (``_layout``) give, per value, a band
    of certain normals and one beyond which it is certainly an outlier, both exact for the same
    reasons as ``RollingMAD``'s (every float operation monotone in its inputs). Values in
    neither are counted as ``RollingMAD.is_outlier`` counts (``_count_unsure``), and the few
    left get their window built (``window``) and the definition computed on it. The windows
    are written once at the end (``finish``): the ring in place, the sorted half by one merge.
    """

    __slots__ = (
        "_evicted",
        "_lengths",
        "_new",
        "_positions",
        "_sorted",
        "_windows",
        "declined",
        "size",
    )

    def __init__(self, windows: Sequence[Any], new: Sequence[Any]) -> None:
        """``windows``: full ``RollingMAD`` of one size; ``new``: per window, a float64 array of
        finite values, as many as the window's size at most."""
        size = windows[0].size
        longest = max(len(values) for values in new)
        evicted = numpy.zeros((len(windows), longest))
        padded = numpy.zeros((len(windows), longest))
        ordered = []
        for row, (window, values) in enumerate(zip(windows, new, strict=True)):
            data, oldest = window.batch_view()
            ring = numpy.frombuffer(data, dtype=numpy.float64, count=size)
            m = len(values)
            end = oldest + m
            if end <= size:
                evicted[row, :m] = ring[oldest:end]
            else:
                evicted[row, : size - oldest] = ring[oldest:]
                evicted[row, size - oldest : m] = ring[: end - size]
            padded[row, :m] = values
            # the sorted half is kept as it is until finish (nothing else writes the window)
            ordered.append(
                numpy.frombuffer(data, dtype=numpy.float64, offset=8 * size)
                if len(data) > size
                else numpy.sort(ring)
            )
        self.size = size
        self._windows = list(windows)
        self._lengths = numpy.array([len(values) for values in new])
        self._new = padded
        self._evicted = evicted
        self._sorted: list[Any] = ordered
        self._positions: list[Any] = [None] * len(windows)
        self.declined: list[int] = []

    def codes(self, ks: Sequence[float]) -> Any:
        """Per new value, window after window, a bit per ``k`` set if it is an outlier for that
        ``k`` (as ``SeriesBlock.judge``), except for the windows it hands back (``declined``,
        their indexes: too many values their bounds leave unsure), which it leaves untouched."""
        size = self.size
        new = self._new
        valid = numpy.arange(new.shape[1])[None, :] < self._lengths[:, None]
        index, outside, sign = _candidate_places(
            size, tuple(_bound_places(size).tolist()), new.shape[1]
        )
        candidates = numpy.stack([ordered[index] for ordered in self._sorted], axis=2)
        candidates *= sign
        candidates[outside] = _INF
        with numpy.errstate(all="ignore"):  # overflow gives inf as in Python; no warnings
            new_t = numpy.ascontiguousarray(new.T)
            evicted_t = numpy.ascontiguousarray(self._evicted.T)
            bounds = _order_bounds(candidates, new_t, evicted_t, valid.T)
            masks_t, unsure_t, low_t, high_t = _band_verdicts(bounds, new_t, ks, bool(size & 1))
            masks, unsure, median_low, median_high = masks_t.T, unsure_t.T, low_t.T, high_t.T
            unsure &= valid
            rows, columns = numpy.nonzero(unsure)
            # a few thousand values at a time: the counts compare each with every update
            step = max(1, _COUNT_BUDGET // (4 * new.shape[1]))
            for start in range(0, len(rows), step):
                chosen = slice(start, start + step)
                self._count_unsure(
                    ks, rows[chosen], columns[chosen], unsure, masks, median_low, median_high
                )
        # A window with many values left (each costs one rebuilt window, O(size)) is handed
        # back: RollingMAD.advance judges those in O(log size) each.
        left = unsure.sum(axis=1)
        most = numpy.maximum(_HAND_BACK_OVER, self._lengths // _HAND_BACK_SHARE)
        self.declined = numpy.flatnonzero(left > most).tolist()
        unsure[self.declined] = False
        rows, columns = numpy.nonzero(unsure)
        for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
            window = self.window(row, column + 1)
            masks[row, column] = _exact_mask(window, float(new[row, column]), ks)
        valid[self.declined] = False
        return masks[valid]

    def _count_unsure(
        self,
        ks: Sequence[float],
        rows: Any,
        columns: Any,
        unsure: Any,
        masks: Any,
        median_low: Any,
        median_high: Any,
    ) -> None:
        """Settle values the bands left unsure by counting, as ``RollingMAD.is_outlier`` does,
        with the median known only within its bounds: ``MAD >= hi`` if at most ``(n - 1) // 2``
        values lie within ``hi`` (widened) of any median in them, ``MAD <= lo`` if at least
        ``n // 2 + 1`` lie within ``lo`` (narrowed) of every one. Counts in a window of the batch
        are ``#{S <= y} - #{R_t <= y} + #{I_t <= y}``; ``x < y`` is ``x <= nextafter(y, -inf)``.
        Judges ``[rows, columns]``; sets the bits it settles in ``masks`` and clears them in
        ``unsure``."""
        size = self.size
        value = self._new[rows, columns]
        low, high = median_low[rows, columns], median_high[rows, columns]
        magnitude = numpy.maximum(numpy.abs(low), numpy.abs(high))
        # prefix[i, j]: update j is among the first t of value i's window
        prefix = numpy.arange(self._new.shape[1])[None, :] <= columns[:, None]
        evicted, new = self._evicted[rows], self._new[rows]
        still = numpy.zeros(len(rows), dtype=bool)
        below = value < low
        for bit, k in enumerate(ks):
            # normal if MAD >= hi: within hi of a median are values in [low - far, high + far]
            hi = numpy.maximum(high - value, value - low) / k * _WIDEN
            far = hi + (magnitude + hi) * _SLACK
            # outlier if MAD <= lo: within lo of every median are values in
            # [high - near, low + near]
            lo = numpy.where(below, low - value, value - high) / k * _NARROW
            near = lo - (magnitude + lo) * _SLACK
            ends = numpy.stack(
                (
                    high + far,
                    numpy.nextafter(low - far, -_INF),
                    low + near,
                    numpy.nextafter(high - near, -_INF),
                ),
                axis=1,
            )
            counts = numpy.empty(ends.shape, dtype=numpy.int64)
            for row in numpy.unique(rows).tolist():
                chosen = rows == row
                counts[chosen] = numpy.searchsorted(self._sorted[row], ends[chosen], "right")
            counts -= ((evicted[:, None, :] <= ends[:, :, None]) & prefix[:, None, :]).sum(2)
            counts += ((new[:, None, :] <= ends[:, :, None]) & prefix[:, None, :]).sum(2)
            finite = numpy.isfinite(ends).all(axis=1) & (far < _HUGE)
            normal = (
                finite
                & (value >= high - k * hi)
                & (value <= low + k * hi)
                & (counts[:, 0] - counts[:, 1] <= (size - 1) // 2)
            )
            outlier = (
                finite
                & (near >= 0.0)
                & ((below & (value < low - k * lo)) | ((value > high) & (value > high + k * lo)))
                & (counts[:, 2] - counts[:, 3] >= size // 2 + 1)
            )
            masks[rows[outlier], columns[outlier]] |= 1 << bit
            still |= ~(normal | outlier)
        unsure[rows[~still], columns[~still]] = False

    def window(self, row: int, t: int) -> Any:
        """Window ``row`` after ``t`` updates, sorted (``S`` without ``R_t``, merged with
        ``I_t``)."""
        ordered = self._sorted[row]
        if self._positions[row] is None:
            self._positions[row] = _places(ordered, self._evicted[row, : self._lengths[row]])
        keep = numpy.ones(self.size, dtype=bool)
        keep[self._positions[row][:t]] = False
        kept = ordered[keep]
        added = numpy.sort(self._new[row, :t])
        # each new value goes before the kept values not below it: kept values keep their
        # order and move up by the new values before them
        merged = numpy.empty(self.size)
        at = numpy.searchsorted(kept, added) + numpy.arange(t)
        merged[at] = added
        placed = numpy.ones(self.size, dtype=bool)
        placed[at] = False
        merged[placed] = kept
        return merged

    def finish(self) -> None:
        """Write each batch into its window (but the declined ones): the new values into the
        ring, and the sorted half unless the window is compacted (it stays so). The runs cannot
        be read after this."""
        size = self.size
        declined = set(self.declined)
        for row, window in enumerate(self._windows):
            if row in declined:
                continue
            m = int(self._lengths[row])
            data, oldest = window.batch_view()
            ring = numpy.frombuffer(data, dtype=numpy.float64, count=size)
            new = self._new[row, :m]
            end = oldest + m
            if end <= size:
                ring[oldest:end] = new
            else:
                ring[oldest:] = new[: size - oldest]
                ring[: end - size] = new[size - oldest :]
            if len(data) > size:
                merged = self.window(row, m)
                self._sorted[row][:] = merged
            del ring
            window.batch_pushed(m)
        self._sorted = []  # no view of a window's storage may outlive the batch


def _order_bounds(candidates: Any, new: Any, evicted: Any, valid: Any) -> list[Any]:
    """Bounds of order statistics of every window of a batch, from the window sorted at the
    start (``S``) and running counts: for place ``i`` and window ``r`` (``candidates[i, d, r]``
    is ``S[p + d]`` for an upper bound of the ``p``-th smallest, ``S[p - d]`` for a lower
    one, ``_candidate_places``; negated there, and modified in place), after ``t`` updates
    (``new[t - 1, r]`` evicting ``evicted[t - 1, r]``; ``valid``: which are real updates, None:
    all), as one ``[t - 1, r]`` array per place, signed as the candidates are. Windows come
    last so that every operation runs along rows of them; no temporary holds a float per
    place, update and window (large arrays cost a page fault per 4 KB on every call).

    Upper bounds: ``#{S <= S[p + d]} >= p + d + 1``, so with ``A = #{R_t <= S[p + d0]}`` (for
    ``d <= d0``) and ``B = #{I_t <= S[p]}`` (for ``d >= 0``), at least ``p + 1 + d - (A - B)``
    values of the window are at most ``S[p + d]``: with ``d = max(0, A - B)``, if ``d <= d0``,
    the ``p``-th smallest is at most ``S[p + d]``. ``d`` is never above ``t``, so ``d0`` = the
    batch's length holds; each further pass with ``d0`` the largest ``d`` of the last can only
    lower ``A``, so every ``d``, which then stays within it. Lower bounds are upper bounds of
    the negated window, read backwards (the ``p``-th smallest of ``-x`` is minus the
    ``(n - 1 - p)``-th of ``x``). A bound beyond the window reads infinity, which settles
    nothing.
    """
    places, reach_max, count = candidates.shape
    rows = places // 2
    count_type = (
        numpy.int8 if reach_max <= 127 else numpy.int16 if reach_max <= 32767 else numpy.int32
    )

    def below(values: Any, limits: Any) -> Any:
        """``[i, t, r]``: how many of ``values[:t + 1, r]``, signed as place ``i``, are at most
        ``limits[i, r]`` (a signed candidate)."""
        mask = numpy.empty((places, *values.shape), dtype=bool)
        numpy.less_equal(values, limits[:rows, None, :], out=mask[:rows])
        numpy.greater_equal(values, -limits[rows:, None, :], out=mask[rows:])
        return _running_count(mask, count_type)

    place = numpy.arange(places)[:, None]
    window = numpy.arange(count)
    below_new = below(new, candidates[:, 0, :])
    reach = numpy.full((places, count), reach_max - 1)
    shift: Any = None
    for _ in range(_PASSES if reach_max > _ONE_PASS_UP_TO + 1 else 1):
        shift = below(evicted, candidates[place, reach, window])
        shift -= below_new
        numpy.maximum(shift, 0, out=shift)
        if valid is not None:
            shift *= valid
        reach = shift.max(axis=1)
    return [numpy.take_along_axis(candidates[i], shift[i], axis=0) for i in range(places)]


def _running_count(mask: Any, count_type: Any) -> Any:
    """``numpy.cumsum(mask, axis=1)`` for ``[i, t, r]`` masks: a few updates are quicker added
    row by row (numpy's cumsum along a middle axis steps one element at a time)."""
    steps = mask.shape[1]
    if steps > 32:
        return numpy.cumsum(mask, axis=1, dtype=count_type)
    total = numpy.empty(mask.shape, dtype=count_type)
    total[:, 0] = mask[:, 0]
    for step in range(1, steps):
        numpy.add(total[:, step - 1], mask[:, step], out=total[:, step])
    return total


def _band_verdicts(
    bounds: list[Any], new: Any, ks: Sequence[float], odd: bool
) -> tuple[Any, Any, Any, Any]:
    """Verdicts of ``new[t - 1, r]`` that the bounds of its window settle (``_order_bounds``
    of the places ``_bound_places`` lists): ``(masks, unsure, median_low, median_high)`` at
    ``[t - 1, r]``, a bit per ``k`` set where it is certainly an outlier, and True where some
    ``k`` is not settled. Inside the band for the smallest floor and the extreme medians is
    normal, outside the one for the largest ceiling an outlier (every float operation in them
    is monotone in its inputs, as in the verdict itself)."""
    uppers = bounds[:4]
    lowers = [-bound for bound in bounds[4:]]
    if odd:
        median_low, median_high = lowers[1], uppers[1]
    else:
        median_low = (lowers[0] + lowers[1]) / 2
        median_high = (uppers[0] + uppers[1]) / 2
    # never above the floor of any window of the batch, never below its ceiling
    floor = numpy.minimum(median_low - uppers[2], lowers[2] - median_high)
    ceiling = numpy.maximum(median_high - lowers[3], uppers[3] - median_low)
    usable_ceiling = ceiling < _HUGE
    masks = numpy.zeros(new.shape, dtype=numpy.int64)
    unsure = numpy.zeros(new.shape, dtype=bool)
    for bit, k in enumerate(ks):
        normal = (new >= median_high - k * floor) & (new <= median_low + k * floor)
        outlier = usable_ceiling & (
            (new < median_low - k * ceiling) | (new > median_high + k * ceiling)
        )
        masks |= outlier.astype(numpy.int64) << bit
        unsure |= ~(normal | outlier)
    return masks, unsure, median_low, median_high


def _bound_places(size: int) -> Any:
    """The sorted places (from 0) whose bounds ``_band_verdicts`` reads: upper bounds of the
    middle values, of the floor's low and of the ceiling's last value; lower bounds of the
    middle values, of the floor's high and of the ceiling's first value (``_layout``)."""
    middle, _, low, high, first, last = _layout(size)
    return numpy.array([middle - 1, middle, low, last, middle - 1, middle, high, first]) - size


@lru_cache(maxsize=32)
def _candidate_places(size: int, places: tuple[int, ...], m: int) -> tuple[Any, Any, Any]:
    """For ``_order_bounds``: per place (upper bounds first, then as many lower bounds), the
    sorted positions ``0 .. m`` places outwards (clipped), which of them lie outside the
    window, and the sign of the row (as ``[i, d, 1]``)."""
    rows = len(places) // 2
    sign = numpy.repeat([1, -1], rows)[:, None]
    where = numpy.array(places)[:, None] + numpy.arange(m + 1) * sign
    outside = (where < 0) | (where >= size)
    return numpy.clip(where, 0, size - 1), outside, sign[:, :, None].astype(numpy.float64)


def _candidates(sorted_columns: Any, size: int, m: int) -> Any:
    """``_order_bounds``'s candidates from sorted windows held as columns (``[position, r]``):
    ``[i, d, r]``, lower bounds' negated, infinity outside the window."""
    index, outside, sign = _candidate_places(size, tuple(_bound_places(size).tolist()), m)
    candidates = sorted_columns[index]
    candidates *= sign
    candidates[outside] = _INF
    return candidates


def _places(ordered: Any, values: Any) -> Any:
    """Distinct places in ``ordered`` (sorted) holding each of ``values`` (a sub-multiset),
    in the order of ``values``: equal values take consecutive places of their run."""
    order = numpy.argsort(values, kind="stable")
    chosen = values[order]
    places = numpy.empty(len(values), dtype=numpy.intp)
    places[order] = numpy.searchsorted(ordered, chosen, "left") + (
        numpy.arange(len(values)) - numpy.searchsorted(chosen, chosen, "left")
    )
    return places


def _exact_mask(window: Any, value: float, ks: Sequence[float]) -> int:
    """The definition's verdict for ``value`` on a sorted window (numpy), a bit per ``k``."""
    n = len(window)
    half = n >> 1
    with numpy.errstate(all="ignore"):
        if n & 1:
            median = float(window[half])
            deviations = numpy.abs(window - median)
            mad = float(numpy.partition(deviations, half)[half])
        else:
            median = float(window[half - 1]) + float(window[half])
            median = median / 2
            deviations = numpy.abs(window - median)
            part = numpy.partition(deviations, (half - 1, half))
            mad = (float(part[half - 1]) + float(part[half])) / 2
    return sum(
        1 << bit for bit, k in enumerate(ks) if value < median - k * mad or value > median + k * mad
    )
