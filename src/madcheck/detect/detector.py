"""Per-series detection for one table: rows in, verdicts and fired rules out.

Thresholds on the same field with the same ``window_count`` share one window (one sorted copy of
the values), each keeping its own rule state because ``k`` differs. Rows are processed in time
order per series whatever order the batch arrived in, since both rules are defined on data time.
With recovery notifications on, each threshold also has a ``RecoveryWatch`` (detect/lifecycle.py)
that reports ``resolved`` events in the same list as the fired rules, in data-time order.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import Alert, Tags
from madcheck.detect.lifecycle import RecoveryWatch
from madcheck.detect.rules import CountRule, DurationRule, FlipHistory
from madcheck.detect.window import RollingMAD

Row = Mapping[str, Any]

SKIP_MISSING = "field missing"
SKIP_NOT_NUMERIC = "value not numeric"
SKIP_NOT_FINITE = "value NaN or infinite"
SKIP_BAD_TIME = "time missing or not an integer"
SKIP_BAD_ROW = "row is not a mapping"


@dataclass
class BatchResult:
    """What one batch did: fired rules, outlier counts per field, rows or values passed over."""

    alerts: list[Alert] = field(default_factory=list)
    points: int = 0
    outliers: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


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
    __slots__ = ("states", "window")

    def __init__(
        self, window_count: int, thresholds: Sequence[Threshold], flips: bool, recovery_count: int
    ) -> None:
        self.window = RollingMAD(window_count)
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
    """One series' state: its key, the tag names the key was read with, a window per group.

    The (name, value) tag pairs are only made when an alert needs them: kept here they would
    cost more memory than ten values of a window.
    """

    key: Any
    tag_names: tuple[str, ...]
    windows: tuple[_FieldWindow, ...]

    def tags(self) -> Tags:
        values = (self.key,) if len(self.tag_names) == 1 else self.key
        return tuple(
            (name, str(value))
            for name, value in zip(self.tag_names, values, strict=True)
            if value is not None
        )


@dataclass(frozen=True)
class _FieldGroup:
    field: str
    window_count: int
    thresholds: tuple[Threshold, ...]

    @property
    def ks(self) -> tuple[float, ...]:
        return tuple(threshold.k for threshold in self.thresholds)


class VerdictObserver(Protocol):
    """An optional view of every series' verdicts, for tools that report per series what the
    detector did (``madcheck replay``); ``Detector.observer``, ``None`` by default.

    ``series`` is the detector's own per-series object (``series.tags()`` gives its tags) and
    ``cell`` its per-field window, both stable for the series' life, so they can key a dict.
    Off, the hot path pays one ``is None`` test per series and batch and per outlier.
    """

    def entered(self, series: Any, field: str, cell: Any, count: int, last_ns: int) -> None:
        """``count`` values of ``field`` entered the window, the last of them at ``last_ns``."""

    def outlier(self, series: Any, field: str, cell: Any, position: int, time_ns: int) -> None:
        """The threshold at ``position`` of ``cell.states`` judged the value at ``time_ns`` an
        outlier."""

    def traces(self, series: Any) -> bool:
        """Whether ``judged`` should get each value of this series (slower: per value)."""

    def judged(
        self, series: Any, field: str, cell: Any, time_ns: int, value: float, median: float,
        mad: float,
    ) -> None:  # fmt: skip
        """A value of a traced series, after it entered the full window (median, MAD incl.)."""


class Detector:
    """Detection state of every series of one table. ``recovery_count`` > 0 turns recovery
    tracking on: that many consecutive normal verdicts after a sent alert report it resolved."""

    def __init__(
        self,
        table: str,
        thresholds: Sequence[Threshold],
        state_change_count: int = 0,
        recovery_count: int = 0,
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
        #: see ``VerdictObserver``; None (the default) costs the hot path nothing
        self.observer: VerdictObserver | None = None

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
            for group, cell in zip(self._groups, entry.windows, strict=True):
                value = _numeric(row.get(group.field), ignored)
                if value is not None:
                    cell.window.add(value)
                    added += 1
        return added

    def process(self, rows: Sequence[Row], tag_names: Sequence[str]) -> BatchResult:
        """Feed a batch of rows (any order) and return what fired.

        Rows are taken series by series (each series' rows in time order), so one series' state
        is fetched once per batch and stays in the CPU cache while its rows go through; alerts
        are then put back in row order. When all of a series' values are finite floats (the
        usual case) they go to the window in one call; otherwise value by value, resetting the
        rules at each value that cannot enter the window.
        """
        result = BatchResult()
        ordered = self._in_time_order(rows, result)
        result.points = len(ordered)
        fired: list[tuple[Row, Alert]] = []
        series = self._series
        fields = self._fields
        observer = self.observer
        for key, series_rows in _by_series(ordered, tag_names).items():
            entry = series.get(key)
            if entry is None:
                entry = self._new_series(key, tag_names)
            traced = observer is not None and observer.traces(entry)
            for (name, read, ks), cell in zip(fields, entry.windows, strict=True):
                try:
                    values: list[Any] = list(map(read, series_rows))
                except KeyError:  # some row lacks the field: None, as row.get gives
                    values = [row.get(name) for row in series_rows]
                if not traced and set(map(type, values)) == _FLOATS and -_INF < sum(values) < _INF:
                    self._feed(entry, name, ks, cell, values, series_rows, fired, result)
                    if observer is not None:
                        observer.entered(entry, name, cell, len(values), series_rows[-1]["time"])
                    continue
                entered, last_ns = 0, 0
                for row, raw in zip(series_rows, values, strict=True):
                    value = _numeric(raw, result)
                    if value is None:
                        cell.reset_rules()
                        continue
                    self._feed(entry, name, ks, cell, (value,), (row,), fired, result)
                    entered, last_ns = entered + 1, row["time"]
                    if traced and cell.window.full:
                        median, mad = cell.window.median_and_mad()
                        observer.judged(entry, name, cell, last_ns, value, median, mad)  # type: ignore[union-attr]
                if observer is not None and entered:
                    observer.entered(entry, name, cell, entered, last_ns)
        result.alerts = _in_row_order(fired, ordered)
        return result

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
        done = 0
        while done < len(values):
            limit = cell.normals_to_recovery() if self.recovery_count else 0
            done, normals, mask = window.advance(values, done, ks, limit)
            last = done - 1
            if normals:
                # every state saw `normals` normal verdicts, the last of them at values[last]
                # if the run stopped on one (no mask)
                for state in cell.states:
                    state.rule.reset()
                    if state.flips is not None:
                        state.flips.update(False, normals)
                    if state.recovery is not None and state.recovery.since_ns is not None:
                        for _ in range(normals):
                            started = state.recovery.update(False, False, rows[last]["time"])
                        if started is not None:
                            event = self._alert(
                                entry, name, window, state, values[last], rows[last], started
                            )
                            fired.append((rows[last], event))
            if not mask:
                continue
            # values[last] is an outlier for some k, and the window is as it was then
            row = rows[last]
            observer = self.observer
            for bit, state in enumerate(cell.states):
                outlier = bool(mask >> bit & 1)
                if outlier and state.threshold.has_floor:  # MAD floor: outside its band too
                    outlier = state.threshold.beyond_floor(values[last], window.median())
                if outlier:
                    result.outliers[name] += 1
                    if observer is not None:
                        observer.outlier(entry, name, cell, bit, row["time"])
                if state.flips is not None:
                    state.flips.update(outlier)
                opens = False
                if state.rule.update(outlier, row["time"]):
                    alert = self._alert(entry, name, window, state, values[last], row)
                    fired.append((row, alert))
                    opens = not alert.suppressed
                if state.recovery is not None:
                    started = state.recovery.update(outlier, opens, row["time"])
                    if started is not None:  # a larger k found this value normal
                        event = self._alert(entry, name, window, state, values[last], row, started)
                        fired.append((row, event))

    def _alert(
        self,
        entry: _Series,
        field: str,
        window: RollingMAD,
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
        windows = tuple(
            _FieldWindow(
                group.window_count,
                group.thresholds,
                self.state_change_count >= 2,
                self.recovery_count,
            )
            for group in self._groups
        )
        entry = _Series(key, tuple(tag_names), windows)
        self._series[key] = entry
        return entry


_TIME = itemgetter("time")
_FLOATS = {float}
_INF = math.inf


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
        position = {id(row): index for index, row in enumerate(rows)}
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
