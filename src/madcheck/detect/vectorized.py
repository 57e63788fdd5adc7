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
from typing import Any

try:
    import numpy
    from numpy.lib.stride_tricks import sliding_window_view
except ImportError:  # pragma: no cover - exercised by the pure-Python runs of the tests
    numpy = None  # type: ignore[assignment]

from madcheck.detect.window import _layout

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
        middle, odd, low, high, _, _ = _layout(size)
        middle, low, high = middle - size, low - size, high - size
        k = min(ks)
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
                # as in _masks: the exact lower bound of the MAD settles most values
                median = window[middle] if odd else (window[middle - 1] + window[middle]) / 2
                down = median - window[low]
                up = window[high] - median
                floor = down if down < up else up
                if not (value < median - k * floor or value > median + k * floor):
                    codes.append(0)
                    continue
                median, mad = sorted_median_and_mad(window)
                codes.append(
                    sum(
                        1 << bit
                        for bit, k_bit in enumerate(ks)
                        if value < median - k_bit * mad or value > median + k_bit * mad
                    )
                )
            stored = self._values[row]
            if count < size:  # shift in place: cheaper than writing back the whole line
                stored[: size - count] = stored[count:]
                stored[size - count :] = values[done : done + count]
            else:
                stored[:] = line
            done += count
            self._count[row] = len(line)
        return codes, ordered


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
