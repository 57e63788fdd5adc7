"""Per-series detection for one table: rows in, verdicts and fired rules out.

Thresholds on the same field with the same ``window_count`` share one window (one sorted copy of
the values), each keeping its own rule state because ``k`` differs. Rows are processed in time
order per series whatever order the batch arrived in, since both rules are defined on data time.
With recovery notifications on, each threshold also has a ``RecoveryWatch`` (detect/lifecycle.py)
that reports ``resolved`` events in the same list as the fired rules, in data-time order.

With numpy, windows of up to ``BLOCK_MAX_WINDOW`` values are not ``RollingMAD`` objects: each
window group keeps every series' values in one ``SeriesBlock`` (detect/vectorized.py) and judges
a whole batch at once; the rules are then applied series by series, to the events only.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from madcheck.config.thresholds import Threshold
from madcheck.detect import vectorized
from madcheck.detect.alerts import Alert, Tags
from madcheck.detect.lifecycle import RecoveryWatch
from madcheck.detect.rules import CountRule, DurationRule, FlipHistory
from madcheck.detect.vectorized import (
    BLOCK_MAX_WINDOW,
    COMPACT_MAX_WINDOW,
    RUN_MIN,
    SeriesBlock,
    sorted_median,
    sorted_median_and_mad,
)
from madcheck.detect.window import RollingMAD

try:
    import numpy
except ImportError:  # pragma: no cover - the pure-Python path needs no numpy
    numpy = None  # type: ignore[assignment]

Row = Mapping[str, Any]

SKIP_MISSING = "field missing"
SKIP_NOT_NUMERIC = "value not numeric"
SKIP_NOT_FINITE = "value NaN or infinite"
SKIP_BAD_TIME = "time missing or not an integer"
SKIP_BAD_ROW = "row is not a mapping"


def _empty_counter() -> Counter[str]:
    """An empty ``Counter``, made without ``Counter.__init__`` (whose Python-level ``update``
    call costs ~0.4 µs, twice per ``process`` call: a tenth of a one-row call)."""
    return Counter.__new__(Counter)


@dataclass
class BatchResult:
    """What one batch did: fired rules, outlier counts per field, rows or values passed over."""

    alerts: list[Alert] = field(default_factory=list)
    points: int = 0
    outliers: Counter[str] = field(default_factory=_empty_counter)
    skipped: Counter[str] = field(default_factory=_empty_counter)


class _ThresholdState:
    __slots__ = ("flips", "recovery", "rule", "threshold")

    def __init__(self, threshold: Threshold, track_flips: bool, recovery_count: int) -> None:
        self.threshold = threshold
        self.rule: CountRule | DurationRule = (
            CountRule(threshold.count)
            if threshold.count is not None
            else DurationRule(threshold.duration_ns or 0)
        )
        self.flips = FlipHistory(threshold.window_count) if track_flips else None
        self.recovery = RecoveryWatch(recovery_count) if recovery_count else None


class _FieldWindow:
    """One series' window of one group (None when the group's ``SeriesBlock`` holds the values)
    and the state of each of the group's thresholds."""

    __slots__ = ("states", "window")

    def __init__(
        self,
        window: RollingMAD | None,
        thresholds: Sequence[Threshold],
        flips: bool,
        recovery_count: int,
    ) -> None:
        self.window = window
        self.states = tuple(_ThresholdState(t, flips, recovery_count) for t in thresholds)

    def reset_rules(self) -> None:
        for state in self.states:
            state.rule.reset()
            if state.recovery is not None:
                state.recovery.reset()

    def normals_to_recovery(self) -> int:
        """How many more normal verdicts complete an open recovery (0 if none is open)."""
        needs = [
            state.recovery.needed - state.recovery.normal_run
            for state in self.states
            if state.recovery is not None and state.recovery.since_ns is not None
        ]
        return min(needs, default=0)


class _Series(NamedTuple):
    """One series' state: its key, the tag names the key was read with, a window per group, and
    its row in the groups' ``SeriesBlock`` matrices (its number, in order of first sight).

    The (name, value) tag pairs are only made when an alert needs them: kept here they would
    cost more memory than ten values of a window.
    """

    key: Any
    tag_names: tuple[str, ...]
    windows: tuple[_FieldWindow, ...]
    number: int

    def tags(self) -> Tags:
        values = (self.key,) if len(self.tag_names) == 1 else self.key
        return tuple(
            (name, str(value))
            for name, value in zip(self.tag_names, values, strict=True)
            if value is not None
        )


class _Stats(Protocol):
    """A window as an alert reads it."""

    def median_and_mad(self) -> tuple[float, float]: ...

    def median(self) -> float: ...


class VerdictObserver(Protocol):
    """An optional view of every series' verdicts, for tools that report per series what the
    detector did (``madcheck replay``); ``Detector.observer``, ``None`` by default.

    ``series`` is the detector's own per-series object (``series.tags()`` gives its tags) and
    ``cell`` its per-field window, both stable for the series' life, so they can key a dict.
    Every path (numpy blocks, pure Python) reports the same calls. Off, the hot path pays one
    ``is None`` test per window group and batch; on, the pure-Python path does not let
    outliers pass ``advance`` (``_feed_passing``), so that each one is reported where it is
    judged.
    """

    def entered(self, series: Any, field: str, cell: Any, count: int, last_ns: int) -> None:
        """``count`` values of ``field`` entered the window, the last of them at ``last_ns``."""

    def outlier(self, series: Any, field: str, cell: Any, position: int, time_ns: int) -> None:
        """The threshold at ``position`` of ``cell.states`` judged the value at ``time_ns`` an
        outlier."""

    def traces(self, series: Any) -> bool:
        """Whether ``judged`` should get the values of this series (slower: values and bands
        are read)."""

    def judged(
        self,
        series: Any,
        field: str,
        cell: Any,
        times: Sequence[int],
        values: Sequence[float],
        medians: Sequence[float],
        mads: Sequence[float],
    ) -> None:
        """The values of a traced series that a full window judged in one batch, in time
        order, each with its window's median and MAD (itself included); after the
        ``outlier`` calls for them."""


class _BlockGroup(NamedTuple):
    """A window group judged by a ``SeriesBlock``: its place in ``_fields``, field, and ks."""

    position: int
    name: str
    ks: tuple[float, ...]


class _SortedWindow:
    """The sorted window ``SeriesBlock.judge`` gave the value at one position of a batch, read
    only for an alert."""

    __slots__ = ("_at", "_batch")

    def __init__(self, batch: _BlockBatch, at: int) -> None:
        self._batch = batch
        self._at = at

    def median_and_mad(self) -> tuple[float, float]:
        values = self._batch.window(self._at)
        return sorted_median_and_mad(values if isinstance(values, list) else values.tolist())

    def median(self) -> float:
        return self.median_and_mad()[0]


class _SortedList:
    """A sorted window as a plain list (``SeriesBlock.judge_one``), read only for an alert."""

    __slots__ = ("_window",)

    def __init__(self, window: list[float]) -> None:
        self._window = window

    def median_and_mad(self) -> tuple[float, float]:
        return sorted_median_and_mad(self._window)

    def median(self) -> float:
        return sorted_median(self._window)


class _BlockBatch:
    """One window group's batch, series by series (positions into ``order``): the verdict codes
    of ``SeriesBlock.judge`` (-2 where the value could not enter the window) and what an alert
    at a position reads."""

    __slots__ = (
        "_code_array",
        "_codes",
        "_order",
        "_order_array",
        "_ranks",
        "events",
        "first_event",
        "normals_before",
        "rows",
        "values",
        "windows",
    )

    def __init__(
        self, rows: Sequence[Row], order: Any, values: Any, codes: Any, windows: Any
    ) -> None:
        """``order`` and ``codes``: lists, or numpy arrays made lists when first read (most
        batches of a steady state read neither)."""
        self.rows = rows
        self._order_array = order
        self._order: list[int] | None = order if isinstance(order, list) else None
        self.values = values
        self._code_array = codes
        self._codes: list[int] | None = codes if isinstance(codes, list) else None
        self.windows = windows  # one per code >= 0, in order
        self._ranks: list[int] | None = None
        # for _walk_events: positions of the events, how many normal verdicts come before each
        # position, and each series' first event (an index into events)
        self.events: list[int] = []
        self.normals_before: list[int] = []
        self.first_event: list[int] = []

    @property
    def order(self) -> list[int]:
        """Per position, the index of its row in ``rows`` (and of its value in ``values``)."""
        if self._order is None:
            self._order = self._order_array.tolist()
        return self._order

    @property
    def codes(self) -> list[int]:
        """Per position, its verdict code (see the class)."""
        if self._codes is None:
            self._codes = self._code_array.tolist()
        return self._codes

    def point(self, at: int) -> tuple[Row, float, _SortedWindow]:
        """The row, value and window of the verdict at ``at``."""
        index = self.order[at]
        return self.rows[index], float(self.values[index]), _SortedWindow(self, at)

    def window(self, at: int) -> Any:
        if self._ranks is None:
            ranks, rank = [], -1
            for code in self.codes:
                rank += code >= 0
                ranks.append(rank)
            self._ranks = ranks
        return self.windows[self._ranks[at]]


class _RunWindows:
    """The sorted windows of a ``WindowRuns`` batch, by position (window after window), built
    only when an alert reads one."""

    __slots__ = ("_ends", "_rows", "_runs")

    def __init__(
        self, runs: vectorized.WindowRuns, rows: Sequence[int], lengths: Sequence[int]
    ) -> None:
        """``rows``: the windows of ``runs`` whose codes were taken, with their lengths."""
        self._runs = runs
        self._rows = rows
        self._ends = list(accumulate(lengths))

    def __getitem__(self, at: int) -> Any:
        index = bisect_right(self._ends, at)
        start = self._ends[index - 1] if index else 0
        return self._runs.window(self._rows[index], at - start + 1)


@dataclass(frozen=True)
class _FieldGroup:
    field: str
    window_count: int
    thresholds: tuple[Threshold, ...]

    @property
    def ks(self) -> tuple[float, ...]:
        return tuple(threshold.k for threshold in self.thresholds)


class Detector:
    """Detection state of every series of one table. ``recovery_count`` > 0 turns recovery
    tracking on: that many consecutive normal verdicts after a sent alert report it resolved.

    ``vectorize``: judge windows of up to ``BLOCK_MAX_WINDOW`` values a batch at a time with
    numpy (``vectorized.SeriesBlock``); by default when numpy is there (see
    ``vectorized.available``). Both ways give the same verdicts and alerts.
    """

    def __init__(
        self,
        table: str,
        thresholds: Sequence[Threshold],
        state_change_count: int = 0,
        recovery_count: int = 0,
        vectorize: bool | None = None,
    ) -> None:
        self.table = table
        self.state_change_count = state_change_count
        self.recovery_count = recovery_count
        grouped: dict[tuple[str, int], list[Threshold]] = {}
        for threshold in thresholds:
            grouped.setdefault((threshold.field, threshold.window_count), []).append(threshold)
        self._groups = tuple(
            _FieldGroup(name, window, tuple(members)) for (name, window), members in grouped.items()
        )
        # per group, what the hot loop needs: the field name, a C-level reader of it, and every
        # threshold's k
        self._fields = tuple(
            (group.field, itemgetter(group.field), group.ks) for group in self._groups
        )
        # key: the row's tag values, as _key_reader reads them (one tag: the value alone)
        self._series: dict[Any, _Series] = {}
        self._entries: list[_Series] = []  # by index
        #: see ``VerdictObserver``; None (the default) costs the hot path nothing
        self.observer: VerdictObserver | None = None
        if vectorize is None:
            vectorize = vectorized.available()
        self._blocks = tuple(
            SeriesBlock(group.window_count)
            if vectorize and group.window_count <= BLOCK_MAX_WINDOW
            else None
            for group in self._groups
        )
        # with numpy, larger windows judge a batch of many values at once (WindowRuns), but
        # not with a MAD floor (it needs each outlier's median)
        self._runs = tuple(
            vectorize
            and group.window_count > BLOCK_MAX_WINDOW
            and not any(threshold.has_floor for threshold in group.thresholds)
            for group in self._groups
        )
        # with numpy, windows up to COMPACT_MAX_WINDOW keep only their ring between batches
        self._compact = tuple(
            vectorize and BLOCK_MAX_WINDOW < group.window_count <= COMPACT_MAX_WINDOW
            for group in self._groups
        )

    @property
    def series_count(self) -> int:
        return len(self._series)

    def tracks(self, row: Row, tag_names: Sequence[str]) -> bool:
        """Whether the series of ``row`` already has state (seen since the trigger started)."""
        return _lenient_key(row, tag_names) in self._series

    def untracked(self, keys: Iterable[Any]) -> set[Any]:
        """Which of these series keys (as ``process`` reads them: one tag's bare value, else a
        tuple of tag values) have no state yet; one C-level set difference."""
        return set(keys).difference(self._series)

    def prime(self, rows: Sequence[Row], tag_names: Sequence[str]) -> int:
        """Fill windows from stored history, in the given order, without verdicts.

        After a restart the windows are empty and no verdict comes for ``window_count`` points;
        feeding the series' recent rows from the table first lets detection resume at once.
        Rules and flap history are left untouched: past points were judged before the restart.
        Returns the number of values that entered a window.
        """
        ignored = BatchResult()
        added = 0
        for row in rows:
            key = _lenient_key(row, tag_names)
            entry = self._series.get(key)
            if entry is None:
                entry = self._new_series(key, tag_names)
            for group, cell, block in zip(self._groups, entry.windows, self._blocks, strict=True):
                value = _numeric(row.get(group.field), ignored)
                if value is not None:
                    if block is not None:
                        block.add(entry.number, value)
                    elif cell.window is not None:
                        cell.window.add(value)
                    added += 1
        return added

    def process(self, rows: Sequence[Row], tag_names: Sequence[str]) -> BatchResult:
        """Feed a batch of rows (any order) and return what fired.

        Each window group in turn. A ``SeriesBlock`` group judges the whole batch at once
        (``_process_block``). Otherwise rows are taken series by series (each series' rows in
        time order), so one series' state is fetched once per batch and stays in the CPU cache
        while its rows go through; when all of a series' values are finite floats (the usual
        case) they go to the window in one call, else value by value, resetting the rules at
        each value that cannot enter the window. Alerts are then put back in row order.
        """
        result = BatchResult()
        if len(rows) == 1 and type(rows[0]) is dict and type(rows[0].get("time")) is int:
            ordered = rows  # a small flush's one engine row: what _in_time_order would return
        else:
            ordered = self._in_time_order(rows, result)
        result.points = len(ordered)
        fired: list[tuple[Row, Alert]] = []
        by_series: list[tuple[_Series, list[Row]]] | None = None
        numbers = None
        one: _Series | None = None  # a one-row call's series, for _process_one
        for position, ((name, read, ks), block) in enumerate(
            zip(self._fields, self._blocks, strict=True)
        ):
            if block is not None and len(ordered) <= _FEW and self.observer is None:
                # a handful of rows: one by one (rules are per series, rows in time order)
                if len(ordered) == 1:
                    if one is None:
                        one = self._series_of(ordered[0], tag_names)
                    self._process_one(block, position, name, ks, one, ordered[0], fired, result)
                    continue
                if numbers is None:
                    numbers = self._numbers(ordered, tag_names)
                entries = self._entries
                for number, row in zip(numbers, ordered, strict=True):
                    entry = entries[number]
                    self._process_one(block, position, name, ks, entry, row, fired, result)
                continue
            if block is not None:
                if numbers is None:
                    numbers = self._numbers(ordered, tag_names)
                group = _BlockGroup(position, name, ks)
                if len(ordered) <= _FEW:
                    self._process_few(block, group, numbers, ordered, fired, result)
                else:
                    self._process_block(block, group, numbers, ordered, read, fired, result)
                continue
            if self._runs[position] and self.observer is None and len(ordered) > _FEW:
                if numbers is None:
                    numbers = self._numbers(ordered, tag_names)
                group = _BlockGroup(position, name, ks)
                if self._process_large(group, numbers, ordered, read, fired, result):
                    continue
            if by_series is None:
                by_series = [
                    (self._series.get(key) or self._new_series(key, tag_names), series_rows)
                    for key, series_rows in _by_series(ordered, tag_names).items()
                ]
            compact = self._compact[position]
            observer = self.observer
            for entry, series_rows in by_series:
                cell = entry.windows[position]
                traced = observer is not None and observer.traces(entry)
                try:
                    values: list[Any] = list(map(read, series_rows))
                except KeyError:  # some row lacks the field: None, as row.get gives
                    values = [row.get(name) for row in series_rows]
                if not traced and set(map(type, values)) == _FLOATS and -_INF < sum(values) < _INF:
                    self._feed(entry, name, ks, cell, values, series_rows, fired, result)
                    if observer is not None:
                        observer.entered(entry, name, cell, len(values), series_rows[-1]["time"])
                else:
                    entered, last_ns = 0, 0
                    times: list[int] = []
                    judged: list[float] = []
                    medians: list[float] = []
                    mads: list[float] = []
                    for row, raw in zip(series_rows, values, strict=True):
                        value = _numeric(raw, result)
                        if value is None:
                            cell.reset_rules()
                            continue
                        self._feed(entry, name, ks, cell, (value,), (row,), fired, result)
                        entered, last_ns = entered + 1, row["time"]
                        if traced and cell.window is not None and cell.window.full:
                            median, mad = cell.window.median_and_mad()
                            times.append(last_ns)
                            judged.append(value)
                            medians.append(median)
                            mads.append(mad)
                    if observer is not None and entered:
                        observer.entered(entry, name, cell, entered, last_ns)
                    if times:
                        observer.judged(entry, name, cell, times, judged, medians, mads)  # type: ignore[union-attr]
                if compact and len(values) > _FEW:
                    # (a window that got a handful keeps its sorted half: sorting its ring
                    # again for each small call would cost more than the values are worth)
                    assert cell.window is not None
                    cell.window.compact()
        result.alerts = _in_row_order(fired, ordered)
        return result

    def _process_large(
        self,
        group: _BlockGroup,
        numbers_list: list[int],
        ordered: Sequence[Row],
        read: Callable[[Row], Any],
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
    ) -> bool:
        """A group of ``RollingMAD`` windows (numpy there, no MAD floor, no observer), when
        every value of the batch is a finite float (else False, and nothing done): the full
        windows that get between ``RUN_MIN`` values and ``1 / _RUN_SHARE`` of their size judge
        them together (``vectorized.WindowRuns``), then the rules as for a ``SeriesBlock``
        group; the other series go through ``_feed``. Rows are grouped by series with C-level
        passes, as for a ``SeriesBlock``."""
        try:
            raw: list[Any] = list(map(read, ordered))
        except KeyError:  # some row lacks the field
            return False
        if set(map(type, raw)) != _FLOATS:
            return False
        values = numpy.array(raw, dtype=numpy.float64)
        if not -_INF < float(values.sum()) < _INF:  # a NaN or an infinity among them
            return False
        name, position = group.name, group.position
        numbers = numpy.array(numbers_list, dtype=numpy.intp)
        order = numpy.argsort(numbers, kind="stable")  # series by series, each in time order
        grouped = numbers[order]
        in_order = values[order]
        series_numbers, counts = _runs(grouped)
        ends = numpy.cumsum(counts).tolist()
        together: list[tuple[_FieldWindow, int, int]] = []
        at = 0
        for number, end in zip(series_numbers.tolist(), ends, strict=True):
            entry = self._entries[number]
            cell = entry.windows[position]
            window = cell.window
            assert window is not None
            count = end - at
            if window.full and RUN_MIN <= count <= window.size // _RUN_SHARE:
                together.append((cell, at, end))
            else:
                rows = list(map(ordered.__getitem__, order[at:end].tolist()))
                series_values = in_order[at:end].tolist()
                self._feed(entry, name, group.ks, cell, series_values, rows, fired, result)
                if self._compact[position] and count > _FEW:
                    window.compact()
            at = end
        if not together:
            return True
        windows = [cell.window for cell, _, _ in together]
        runs = vectorized.WindowRuns(windows, [in_order[start:end] for _, start, end in together])
        codes = runs.codes(group.ks)
        declined = set(runs.declined)
        judged = [spot for row, spot in enumerate(together) if row not in declined]
        if judged:
            chosen = numpy.concatenate([order[start:end] for _, start, end in judged])
            self._apply_codes(
                group,
                codes,
                numbers[chosen],
                chosen,
                ordered,
                values,
                _RunWindows(
                    runs,
                    [row for row in range(len(together)) if row not in declined],
                    [end - start for _, start, end in judged],
                ),
                fired,
                result,
            )
        runs.finish()  # after the rules: an alert reads its window from the runs
        for row in runs.declined:  # too many unsure values for the runs: one at a time
            cell, start, end = together[row]
            number = int(grouped[start])
            rows = list(map(ordered.__getitem__, order[start:end].tolist()))
            entry = self._entries[number]
            self._feed(
                entry, name, group.ks, cell, in_order[start:end].tolist(), rows, fired, result
            )
        if self._compact[position]:
            for window in windows:
                assert window is not None
                window.compact()
        return True

    def _feed(
        self,
        entry: _Series,
        name: str,
        ks: tuple[float, ...],
        cell: _FieldWindow,
        values: Sequence[float],
        rows: Sequence[Row],
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
    ) -> None:
        """Push finite values into the window; apply each verdict to the rules, in order.

        ``advance`` stops at each outlier and, while a recovery is open, at the normal verdict
        that completes it: at those points the window is as the alert must report it.
        """
        window = cell.window
        assert window is not None  # a group without a SeriesBlock
        done = 0
        simple = self.state_change_count < 2 and not self.recovery_count
        observer = self.observer
        while done < len(values):
            if simple and observer is None:
                pass_limit = _pass_limit(cell)
                if pass_limit:
                    done = self._feed_passing(
                        entry, name, ks, cell, values, rows, fired, result, done, pass_limit
                    )
                    continue
            limit = cell.normals_to_recovery() if self.recovery_count else 0
            done, normals, mask = window.advance(values, done, ks, limit)
            last = done - 1
            if normals:
                # every state saw `normals` normal verdicts, the last of them at values[last]
                # if the run stopped on one (no mask)
                self._normals(entry, name, cell, normals, values[last], rows[last], window, fired)
            if mask:  # values[last] is an outlier for some k, and the window is as it was then
                mask = _floored(cell, mask, values[last], window.median())
                self._outlier(entry, name, cell, mask, values[last], rows[last], window, fired)
                if mask:
                    result.outliers[name] += mask.bit_count()
                    if observer is not None:
                        _report_outliers(observer, entry, name, cell, mask, rows[last]["time"])

    def _feed_passing(
        self,
        entry: _Series,
        name: str,
        ks: tuple[float, ...],
        cell: _FieldWindow,
        values: Sequence[float],
        rows: Sequence[Row],
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
        start: int,
        pass_limit: int,
    ) -> int:
        """``_feed``'s step without flap history or recovery, letting through the outliers on
        which no count rule can fire yet (``_pass_limit``): their verdicts are applied to the
        rules afterwards, in order. Returns where the step ended."""
        window = cell.window
        assert window is not None
        passed: list[tuple[int, int]] = []
        done, normals, mask = window.advance(values, start, ks, 0, passed, pass_limit)
        judged = normals + len(passed) + (1 if mask else 0)
        after = done - judged  # the first value with a verdict
        states = cell.states
        for index, code in passed:
            if index > after:  # normal verdicts came between
                for state in states:
                    state.rule.reset()
            time_ns = rows[index]["time"]
            for bit, state in enumerate(states):
                state.rule.update(bool(code >> bit & 1), time_ns)  # cannot fire (pass limit)
            after = index + 1
        last = done - 1
        if (last if mask else done) > after:
            for state in states:
                state.rule.reset()
        if mask:
            self._outlier(entry, name, cell, mask, values[last], rows[last], window, fired)
        outliers = mask.bit_count() + sum(code.bit_count() for _, code in passed)
        if outliers:
            result.outliers[name] += outliers
        return done

    def _normals(
        self,
        entry: _Series,
        name: str,
        cell: _FieldWindow,
        normals: int,
        value: float,
        row: Row,
        window: _Stats,
        fired: list[tuple[Row, Alert]],
    ) -> None:
        """``normals`` normal verdicts in a row, the last for ``value`` of ``row``, with
        ``window`` as it was then."""
        for state in cell.states:
            state.rule.reset()
            if state.flips is not None:
                state.flips.update(False, normals)
            if state.recovery is not None and state.recovery.since_ns is not None:
                for _ in range(normals):
                    started = state.recovery.update(False, False, row["time"])
                if started is not None:
                    event = self._alert(entry, name, window, state, value, row, started)
                    fired.append((row, event))

    def _outlier(
        self,
        entry: _Series,
        name: str,
        cell: _FieldWindow,
        mask: int,
        value: float,
        row: Row,
        window: _Stats,
        fired: list[tuple[Row, Alert]],
    ) -> None:
        """An outlier for the thresholds whose bit is set in ``mask`` (normal for the rest)."""
        for bit, state in enumerate(cell.states):
            outlier = bool(mask >> bit & 1)
            if state.flips is not None:
                state.flips.update(outlier)
            opens = False
            if state.rule.update(outlier, row["time"]):
                alert = self._alert(entry, name, window, state, value, row)
                fired.append((row, alert))
                opens = not alert.suppressed
            if state.recovery is not None:
                started = state.recovery.update(outlier, opens, row["time"])
                if started is not None:  # a larger k found this value normal
                    event = self._alert(entry, name, window, state, value, row, started)
                    fired.append((row, event))

    def _alert(
        self,
        entry: _Series,
        field: str,
        window: _Stats,
        state: _ThresholdState,
        value: float,
        row: Row,
        started_ns: int | None = None,
    ) -> Alert:
        """A fired rule, or with ``started_ns`` a resolved alert, with the window's exact median
        and MAD (the verdict may not have needed them)."""
        median, mad = window.median_and_mad()
        flips = state.flips
        transitions = flips.transitions() if flips is not None else 0
        suppressed = (
            started_ns is None and flips is not None and transitions >= self.state_change_count
        )
        return Alert(
            table=self.table,
            field=field,
            tags=entry.tags(),
            threshold=state.threshold,
            value=value,
            median=median,
            mad=mad,
            time_ns=row["time"],
            transitions=transitions,
            suppressed=suppressed,
            started_ns=started_ns,
        )

    # -- the numpy path: every series of a window group at once ------------------------------

    def _numbers(self, ordered: Sequence[Row], tag_names: Sequence[str]) -> list[int]:
        """Each row's series number (``_Series.number``); new series are made in order of first
        sight. C-level passes: key reads and two look-ups a row."""
        try:
            keys = list(map(_key_reader(tag_names), ordered))
        except KeyError:  # some row lacks a tag: its absence is part of its series' identity
            keys = [_lenient_key(row, tag_names) for row in ordered]
        series = self._series
        try:  # steady state: every series is known, the look-ups are the check
            return list(map(_NUMBER, map(series.__getitem__, keys)))
        except KeyError:
            for key in keys:
                if key not in series:
                    self._new_series(key, tag_names)
        return list(map(_NUMBER, map(series.__getitem__, keys)))

    def _process_block(
        self,
        block: SeriesBlock,
        group: _BlockGroup,
        numbers_list: list[int],
        ordered: Sequence[Row],
        read: Callable[[Row], Any],
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
    ) -> None:
        """One window group, the whole batch through ``block``; then the rules, series by
        series, with one step per series that saw only normal verdicts."""
        name = group.name
        numbers = numpy.array(numbers_list, dtype=numpy.intp)
        try:
            raw: list[Any] = list(map(read, ordered))
        except KeyError:  # some row lacks the field: None, as row.get gives
            raw = [row.get(name) for row in ordered]
        if set(map(type, raw)) == _FLOATS:
            values = numpy.array(raw, dtype=numpy.float64)
            usable = numpy.isfinite(values)
            unusable = len(raw) - int(usable.sum())
            if unusable:
                result.skipped[SKIP_NOT_FINITE] += unusable
        else:
            converted = [_numeric(value, result) for value in raw]
            usable = numpy.array([value is not None for value in converted], dtype=bool)
            values = numpy.array([_NAN if value is None else value for value in converted])
            unusable = len(raw) - int(usable.sum())
        order = numpy.argsort(numbers, kind="stable")  # series by series, each in time order
        grouped = numbers[order]
        taken = order if not unusable else order[usable[order]]
        taken_numbers = grouped if not unusable else numbers[taken]
        code_array = numpy.full(len(order), -2, dtype=numpy.int64)  # -2: not usable
        windows: Any = []
        if len(taken):
            rows, counts = _runs(taken_numbers)
            taken_values = values[taken]
            if len(taken) <= _FEW:
                few, windows = block.judge_few(
                    rows.tolist(), counts.tolist(), taken_values.tolist(), group.ks
                )
                judged = numpy.array(few, dtype=numpy.int64)
            else:
                judged, windows = block.judge(rows, counts, taken_values, group.ks)
            thresholds = self._groups[group.position].thresholds
            if any(threshold.has_floor for threshold in thresholds):
                floored = _floor_codes(thresholds, judged.tolist(), taken_values.tolist(), windows)
                judged = numpy.array(floored, dtype=numpy.int64)
            if unusable:
                code_array[usable[order]] = judged
            else:
                code_array = judged
        self._apply_codes(
            group, code_array, grouped, order, ordered, values, windows, fired, result
        )

    def _apply_codes(
        self,
        group: _BlockGroup,
        code_array: Any,
        grouped: Any,
        order: Any,
        ordered: Sequence[Row],
        values: Any,
        windows: Any,
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
    ) -> None:
        """A window group's verdict codes of a batch (``code_array``, series by series:
        ``grouped`` holds each code's series number, ``order`` its row in ``ordered`` and
        ``values``; ``windows`` the sorted window of each code >= 0, in order) applied to the
        rules, series by series, with one step per series that saw only normal verdicts."""
        name = group.name
        starts = numpy.flatnonzero(numpy.diff(grouped)) + 1
        starts = numpy.concatenate(([0], starts))
        starts_list = starts.tolist()
        ends = [*starts_list[1:], len(order)]
        normal = code_array == 0
        normal_counts = numpy.add.reduceat(normal, starts).tolist()
        eventful = (code_array > 0) | (code_array == -2)
        special = numpy.logical_or.reduceat(eventful, starts).tolist()
        outliers = code_array[code_array > 0]
        if len(outliers):
            for bit in range(len(group.ks)):
                result.outliers[name] += int(numpy.count_nonzero(outliers >> bit & 1))
        entries = self._entries
        position = group.position
        batch = _BlockBatch(ordered, order, values, code_array, windows)
        simple = self.state_change_count < 2 and not self.recovery_count
        numbers_of_series = grouped[starts].tolist()
        if self.observer is not None:
            self._observe(group, batch, zip(numbers_of_series, starts_list, ends, strict=True))
        limits = [t.count for t in self._groups[position].thresholds if t.count is not None]
        at_once = simple and any(special) and len(limits) == len(group.ks)
        if at_once:  # count rules only: most series need no walk (_count_runs)
            cells = [entries[number].windows[position] for number in numbers_of_series]
            runs, special = _count_runs(cells, limits, code_array, starts, ends)
            for cell, walk, final in zip(cells, special, runs, strict=True):
                if not walk:
                    for state, run in zip(cell.states, final, strict=True):
                        state.rule.run = run
        if simple and any(special):
            # the rules only need the events (outliers, unusable values) and whether normal
            # verdicts came between them
            events = numpy.flatnonzero(eventful)
            normals_before = numpy.concatenate(([0], numpy.cumsum(normal)))
            batch.events = events.tolist()
            batch.normals_before = normals_before.tolist()
            batch.first_event = numpy.searchsorted(events, [*starts_list, len(order)]).tolist()
        if at_once:  # only the series that may fire are left
            for series_index in [at for at, walk in enumerate(special) if walk]:
                number = numbers_of_series[series_index]
                start, end = starts_list[series_index], ends[series_index]
                cell = entries[number].windows[position]
                self._walk_events(
                    entries[number], group, cell, batch, series_index, start, end, fired
                )
            return
        for series_index, (number, start, end, walk, normals) in enumerate(
            zip(numbers_of_series, starts_list, ends, special, normal_counts, strict=True)
        ):
            cell = entries[number].windows[position]
            if simple:
                if walk:
                    self._walk_events(
                        entries[number], group, cell, batch, series_index, start, end, fired
                    )
                elif normals:
                    for state in cell.states:
                        state.rule.reset()
            elif walk or (self.recovery_count and cell.normals_to_recovery()):
                self._walk(entries[number], group, cell, batch, start, end, fired)
            elif normals:
                for state in cell.states:
                    state.rule.reset()
                    if state.flips is not None:
                        state.flips.update(False, normals)

    def _series_of(self, row: Row, tag_names: Sequence[str]) -> _Series:
        """The series of one row (made if new), as ``_numbers`` finds it."""
        try:
            key = _key_reader(tag_names)(row)
        except KeyError:  # a missing tag is part of the series' identity
            key = _lenient_key(row, tag_names)
        return self._series.get(key) or self._new_series(key, tag_names)

    def _process_one(
        self,
        block: SeriesBlock,
        position: int,
        name: str,
        ks: tuple[float, ...],
        entry: _Series,
        row: Row,
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
    ) -> None:
        """``_process_few`` for one row of a handful (no observer): the verdict from
        ``SeriesBlock.judge_one``, then what ``_walk`` does with one code, without the lists
        and the ``_BlockBatch`` a batch needs."""
        cell = entry.windows[position]
        value = _numeric(row.get(name), result)
        if value is None:
            cell.reset_rules()
            return
        code, window = block.judge_one(entry.number, value, ks)
        if code > 0:
            thresholds = self._groups[position].thresholds
            if any(threshold.has_floor for threshold in thresholds):
                code = _floored(cell, code, value, sorted_median(window))
        if code > 0:
            result.outliers[name] += code.bit_count()
            self._outlier(entry, name, cell, code, value, row, _SortedList(window), fired)
        elif code == 0:  # _walk_normals with one normal verdict
            if self.state_change_count >= 2 or (self.recovery_count and cell.normals_to_recovery()):
                self._normals(entry, name, cell, 1, value, row, _SortedList(window), fired)
            else:
                for state in cell.states:
                    state.rule.reset()

    def _process_few(
        self,
        block: SeriesBlock,
        group: _BlockGroup,
        numbers: list[int],
        ordered: Sequence[Row],
        fired: list[tuple[Row, Alert]],
        result: BatchResult,
    ) -> None:
        """``_process_block`` for a handful of rows with an observer set (without one they go
        through ``_process_one``), without numpy (whose fixed cost per call would be most of a
        small flush's): the same verdicts through ``judge_few``."""
        by_series: dict[int, list[int]] = {}
        for index, number in enumerate(numbers):
            by_series.setdefault(number, []).append(index)
        name = group.name
        values = [_numeric(row.get(name), result) for row in ordered]
        order: list[int] = []
        series: list[int] = []
        counts: list[int] = []
        taken: list[float] = []
        for number, indexes in by_series.items():
            order += indexes
            usable = [value for value in map(values.__getitem__, indexes) if value is not None]
            if usable:
                series.append(number)
                counts.append(len(usable))
                taken += usable
        judged, windows = block.judge_few(series, counts, taken, group.ks)
        judged = _floor_codes(self._groups[group.position].thresholds, judged, taken, windows)
        if len(taken) == len(order):
            codes = judged
        else:
            codes = [-2] * len(order)
            verdicts = iter(judged)
            for at, index in enumerate(order):
                if values[index] is not None:
                    codes[at] = next(verdicts)
        outliers = sum(code.bit_count() for code in codes if code > 0)
        if outliers:
            result.outliers[name] += outliers
        batch = _BlockBatch(ordered, order, values, codes, windows)
        segments = []
        start = 0
        for number, indexes in by_series.items():
            end = start + len(indexes)
            entry = self._entries[number]
            cell = entry.windows[group.position]
            self._walk(entry, group, cell, batch, start, end, fired)
            segments.append((number, start, end))
            start = end
        if self.observer is not None:
            self._observe(group, batch, segments)

    def _observe(
        self, group: _BlockGroup, batch: _BlockBatch, segments: Iterable[tuple[int, int, int]]
    ) -> None:
        """Report a block batch's verdicts to ``observer``, series by series (``segments``:
        series number, start and end in ``batch``), as the pure-Python path reports them."""
        observer = self.observer
        assert observer is not None
        name = group.name
        codes = batch.codes
        rows, order = batch.rows, batch.order
        judged_before: list[int] | None = None  # per position, the verdicts before it
        for number, start, end in segments:
            entry = self._entries[number]
            cell = entry.windows[group.position]
            span = codes[start:end]
            entered = len(span) - span.count(-2)
            if not entered:
                continue
            # counts and outliers: a replay's summary follows every series this way, so this
            # is most of what observing costs it
            if span.count(0) + span.count(-1) < entered:  # some outliers
                for offset in compress(range(len(span)), map(_ZERO.__lt__, span)):
                    time_ns = rows[order[start + offset]]["time"]
                    _report_outliers(observer, entry, name, cell, span[offset], time_ns)
            last = end - 1
            while codes[last] == -2:
                last -= 1
            observer.entered(entry, name, cell, entered, rows[order[last]]["time"])
            if not observer.traces(entry):
                continue
            judged = list(map(_ZERO.__le__, span))  # a full window judged the value
            if not any(judged):
                continue
            if judged_before is None:
                judged_before = _running_count(codes)
            indexes = list(compress(order[start:end], judged))
            medians, mads = _bands(batch.windows, judged_before[start], judged_before[end])
            times = [rows[index]["time"] for index in indexes]
            values = _values_at(batch.values, indexes)
            observer.judged(entry, name, cell, times, values, medians, mads)

    def _walk_events(
        self,
        entry: _Series,
        group: _BlockGroup,
        cell: _FieldWindow,
        batch: _BlockBatch,
        series_index: int,
        start: int,
        end: int,
        fired: list[tuple[Row, Alert]],
    ) -> None:
        """``_walk`` without flap history or recovery: only a series' events (outliers and
        unusable values) are visited; normal verdicts between them just reset the rules."""
        normals_before = batch.normals_before
        codes = batch.codes
        states = cell.states
        after = start  # just after the previous event
        first = batch.first_event
        for event in batch.events[first[series_index] : first[series_index + 1]]:
            if normals_before[event] != normals_before[after]:
                for state in states:
                    state.rule.reset()
            after = event + 1
            code = codes[event]
            if code == -2:
                cell.reset_rules()
                continue
            row = batch.rows[batch.order[event]]
            time_ns = row["time"]
            for bit, state in enumerate(states):
                if state.rule.update(bool(code >> bit & 1), time_ns):
                    _, value, window = batch.point(event)
                    fired.append((row, self._alert(entry, group.name, window, state, value, row)))
        if normals_before[end] != normals_before[after]:
            for state in states:
                state.rule.reset()

    def _walk(
        self,
        entry: _Series,
        group: _BlockGroup,
        cell: _FieldWindow,
        batch: _BlockBatch,
        start: int,
        end: int,
        fired: list[tuple[Row, Alert]],
    ) -> None:
        """Apply one series' verdicts of ``batch[start:end]`` to its rules, in time order: what
        ``_feed`` does with ``advance``'s runs. Only the events (outliers, values that could not
        enter the window, values before the window was full) are visited one by one; the
        normal verdicts between two are one run (``_walk_normals``)."""
        codes = batch.codes
        name = group.name
        flips = any(state.flips is not None for state in cell.states)
        after = start  # the first verdict not yet applied
        for event in [*compress(range(start, end), codes[start:end]), end]:  # codes other than 0
            if event > after:
                self._walk_normals(entry, name, cell, batch, after, event, flips, fired)
            if event == end:
                break
            code = codes[event]
            if code == -2:
                cell.reset_rules()
            elif code > 0:
                row, value, window = batch.point(event)
                self._outlier(entry, name, cell, code, value, row, window, fired)
            after = event + 1

    def _walk_normals(
        self,
        entry: _Series,
        name: str,
        cell: _FieldWindow,
        batch: _BlockBatch,
        at: int,
        end: int,
        flips: bool,
        fired: list[tuple[Row, Alert]],
    ) -> None:
        """The normal verdicts at ``at`` to ``end - 1``: ``_normals`` for the run, cut where an
        open recovery completes. With no recovery open and no flap history they only break the
        rules' runs."""
        while at < end:
            limit = cell.normals_to_recovery() if self.recovery_count else 0
            if not limit and not flips:
                for state in cell.states:
                    state.rule.reset()
                return
            run_end = min(end, at + limit) if limit else end
            row, value, window = batch.point(run_end - 1)
            self._normals(entry, name, cell, run_end - at, value, row, window, fired)
            at = run_end

    def _in_time_order(self, rows: Sequence[Row], result: BatchResult) -> Sequence[Row]:
        if set(map(type, rows)) == {dict}:  # the engine's rows: checked without a Python loop
            try:
                times = list(map(_TIME, rows))
            except KeyError:
                times = []
            if len(times) == len(rows) and set(map(type, times)) == {int}:
                if times == sorted(times):  # one C-level pass (timsort finds a single run)
                    return rows  # already in time order, as a WAL flush usually is
                return sorted(rows, key=_TIME)
        usable = [row for row in rows if isinstance(row, Mapping) and _has_time(row)]
        if len(usable) != len(rows):
            not_mappings = sum(1 for row in rows if not isinstance(row, Mapping))
            result.skipped[SKIP_BAD_ROW] += not_mappings
            result.skipped[SKIP_BAD_TIME] += len(rows) - len(usable) - not_mappings
        usable.sort(key=_time_of)
        return usable

    def _new_series(self, key: Any, tag_names: Sequence[str]) -> _Series:
        index = len(self._entries)
        windows = tuple(
            _FieldWindow(
                RollingMAD(group.window_count, compact) if block is None else None,
                group.thresholds,
                self.state_change_count >= 2,
                self.recovery_count,
            )
            for group, block, compact in zip(self._groups, self._blocks, self._compact, strict=True)
        )
        for block in self._blocks:
            if block is not None:
                block.reserve(index + 1)
        entry = _Series(key, tuple(tag_names), windows, index)
        self._series[key] = entry
        self._entries.append(entry)
        return entry


_TIME = itemgetter("time")
_NUMBER = itemgetter(3)  # _Series.number
_FLOATS = {float}
#: ``_ZERO.__lt__(code)``: the code is an outlier's; ``__le__``: a full window judged the value
_ZERO = 0
_INF = math.inf
_NAN = math.nan
#: Batches of up to this many values of a group go through ``SeriesBlock.judge_few``; a
#: compacting window that gets no more than this in a call keeps its sorted half.
_FEW = 16
#: A window judges its batch with ``WindowRuns`` if the batch is at most this share of it
#: (``size // _RUN_SHARE`` values; more, and the bounds of its windows say too little).
_RUN_SHARE = 4


def _count_runs(
    cells: list[_FieldWindow], limits: list[int], codes: Any, starts: Any, ends: list[int]
) -> tuple[list[list[int]], list[bool]]:
    """Count rules of a batch's series at once, for the series none of them can fire in.

    Per series and rule: the run after the batch (the outliers for that rule after its last
    break, a normal or unusable value; the old run plus them if there was no break), and
    whether it might fire (the old run plus every outlier for it reaches the limit): those
    series are walked value by value instead."""
    old = numpy.array(
        [state.rule.run for cell in cells for state in cell.states],  # type: ignore[union-attr]
        dtype=numpy.int64,
    ).reshape(len(cells), len(limits))
    positions = numpy.arange(len(codes))
    last = numpy.array(ends) - 1
    outlier = codes > 0
    walk = numpy.zeros(len(cells), dtype=bool)
    runs = []
    for bit, limit in enumerate(limits):
        counted = outlier & (codes >> bit & 1).astype(bool)
        breaks = (codes == 0) | (codes == -2) | (outlier & ~counted)
        total = numpy.add.reduceat(counted, starts)
        last_break = numpy.maximum.reduceat(numpy.where(breaks, positions, -1), starts)
        so_far = numpy.cumsum(counted)
        since_break = so_far[last] - so_far[numpy.maximum(last_break, 0)]
        runs.append(numpy.where(last_break >= starts, since_break, old[:, bit] + total))
        walk |= old[:, bit] + total >= limit
    return numpy.stack(runs, axis=1).tolist(), walk.tolist()


def _running_count(codes: list[int]) -> list[int]:
    """Per position of a block batch, how many of the codes before it are verdicts (>= 0): the
    index of its sorted window, if it has one, in ``_BlockBatch.windows``."""
    return list(accumulate(map(_ZERO.__le__, codes), initial=0))


def _bands(windows: Any, first: int, end: int) -> tuple[list[float], list[float]]:
    """Median and MAD of each sorted window ``windows[first:end]`` of a block batch: with
    numpy, of all of them at once, in ``sorted_median_and_mad``'s arithmetic (the same floats:
    the same operations on the same sorted values, element by element)."""
    if numpy is None or not isinstance(windows, numpy.ndarray) or windows.ndim != 2:
        pairs = [
            sorted_median_and_mad(window if isinstance(window, list) else window.tolist())
            for window in windows[first:end]
        ]
        return [median for median, _ in pairs], [mad for _, mad in pairs]
    chosen = windows[first:end]
    size = chosen.shape[1]
    half = size >> 1
    medians = chosen[:, half] if size & 1 else (chosen[:, half - 1] + chosen[:, half]) / 2
    deviations = numpy.sort(numpy.abs(chosen - medians[:, None]), axis=1)
    mads = deviations[:, half] if size & 1 else (deviations[:, half - 1] + deviations[:, half]) / 2
    return medians.tolist(), mads.tolist()


def _values_at(values: Any, indexes: list[int]) -> list[float]:
    """``values[i]`` for each of ``indexes`` as Python floats (``values``: a numpy array or a
    list of a block batch, None where a value could not enter the window)."""
    if numpy is not None and isinstance(values, numpy.ndarray):
        chosen: list[float] = values[indexes].tolist()
        return chosen
    return [values[index] for index in indexes]


def _report_outliers(
    observer: VerdictObserver,
    entry: _Series,
    name: str,
    cell: _FieldWindow,
    mask: int,
    time_ns: int,
) -> None:
    """One ``observer.outlier`` call per threshold whose bit is set in ``mask``."""
    for bit in range(mask.bit_length()):
        if mask >> bit & 1:
            observer.outlier(entry, name, cell, bit, time_ns)


def _floored(cell: _FieldWindow, mask: int, value: float, median: float) -> int:
    """``mask`` with the bits of thresholds whose MAD floor keeps ``value`` inside the band
    cleared (``Threshold.beyond_floor``: an outlier must be outside both bands)."""
    for bit, state in enumerate(cell.states):
        threshold = state.threshold
        if mask >> bit & 1 and threshold.has_floor and not threshold.beyond_floor(value, median):
            mask &= ~(1 << bit)
    return mask


def _floor_codes(
    thresholds: Sequence[Threshold], codes: list[int], values: list[float], windows: Any
) -> list[int]:
    """Block verdict codes with ``_floored`` applied; ``windows`` holds the sorted window of
    each value with a verdict (code >= 0), in order."""
    if not any(threshold.has_floor for threshold in thresholds):
        return codes
    floored = list(codes)
    rank = -1
    for at, code in enumerate(codes):
        rank += code >= 0
        if code <= 0:
            continue
        window = windows[rank]
        median = sorted_median(window if isinstance(window, list) else window.tolist())
        for bit, threshold in enumerate(thresholds):
            floor = threshold.has_floor
            if code >> bit & 1 and floor and not threshold.beyond_floor(values[at], median):
                code &= ~(1 << bit)
        floored[at] = code
    return floored


def _pass_limit(cell: _FieldWindow) -> int:
    """How many outliers in a row none of the cell's rules can fire on: each brings a count
    rule's run at most one nearer its limit. 0 with a duration rule (any outlier may fire it)."""
    room: int | None = None
    for state in cell.states:
        rule = state.rule
        if not isinstance(rule, CountRule) or state.threshold.has_floor:
            return 0  # (a MAD floor needs the median at the outlier)
        left = rule.limit - rule.run - 1
        room = left if room is None or left < room else room
    return room if room is not None and room > 0 else 0


def _runs(numbers: Any) -> tuple[Any, Any]:
    """The distinct values of a sorted array and how many times each occurs."""
    starts = numpy.flatnonzero(numpy.diff(numbers)) + 1
    bounds = numpy.concatenate(([0], starts, [len(numbers)]))
    return numbers[bounds[:-1]], numpy.diff(bounds)


def _no_tags(row: Row) -> tuple[()]:
    return ()


def _key_reader(tag_names: Sequence[str]) -> Callable[[Row], Any]:
    """A C-level reader of a row's tag values; raises KeyError when one is missing."""
    return itemgetter(*tag_names) if tag_names else _no_tags


def _by_series(rows: Sequence[Row], tag_names: Sequence[str]) -> dict[Any, list[Row]]:
    """The rows of each series, in their order."""
    groups: defaultdict[Any, list[Row]] = defaultdict(list)
    try:
        for key, row in zip(map(_key_reader(tag_names), rows), rows, strict=True):
            groups[key].append(row)
    except KeyError:  # some row lacks a tag: its absence is part of its series' identity
        groups.clear()
        for row in rows:
            groups[_lenient_key(row, tag_names)].append(row)
    return groups


def _in_row_order(fired: list[tuple[Row, Alert]], rows: Sequence[Row]) -> list[Alert]:
    """Alerts in the order of the rows that fired them (stable: a row's own alerts keep theirs)."""
    if len(fired) > 1:
        # positions of the firing rows only, found with C-level passes: a dict of every row
        # of a large batch cost more than the rest of the sort
        ids = list(map(id, rows))
        wanted = {id(row) for row, _ in fired}
        at = list(compress(range(len(ids)), map(wanted.__contains__, ids)))
        position = {ids[index]: index for index in at}
        fired.sort(key=lambda pair: position[id(pair[0])])
    return [alert for _, alert in fired]


def _lenient_key(row: Row, tag_names: Sequence[str]) -> Any:
    """The same key as ``_key_reader`` would give, with None for missing tags."""
    if len(tag_names) == 1:
        return row.get(tag_names[0])
    return tuple(row.get(name) for name in tag_names)


def _has_time(row: Row) -> bool:
    return type(row.get("time")) is int


def _time_of(row: Row) -> int:
    time_ns: int = row["time"]
    return time_ns


def _numeric(raw: object, result: BatchResult) -> float | None:
    """The value as a float, or None (counted in ``result.skipped``) if it cannot enter a window.

    Numeric means int or float, never bool. Ints are compared as floats; one too large for a float
    is as unusable as infinity.
    """
    kind = type(raw)
    if kind is float:
        value: float = raw  # type: ignore[assignment]
    elif kind is int:
        try:
            value = float(raw)  # type: ignore[arg-type]
        except OverflowError:
            result.skipped[SKIP_NOT_FINITE] += 1
            return None
    elif raw is None:
        result.skipped[SKIP_MISSING] += 1
        return None
    else:
        result.skipped[SKIP_NOT_NUMERIC] += 1
        return None
    if not math.isfinite(value):
        result.skipped[SKIP_NOT_FINITE] += 1
        return None
    return value
