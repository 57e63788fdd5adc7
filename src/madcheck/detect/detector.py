"""Per-series detection for one table: rows in, verdicts and fired rules out.

Thresholds on the same field with the same ``window_count`` share one window (one sorted copy of
the values), each keeping its own rule state because ``k`` differs. Rows are processed in time
order per series whatever order the batch arrived in, since both rules are defined on data time.
With recovery notifications on, each threshold also has a ``RecoveryWatch`` (detect/lifecycle.py)
that reports ``resolved`` events in the same list as the fired rules, in data-time order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
        self.states = [_ThresholdState(t, flips, recovery_count) for t in thresholds]

    def reset_rules(self) -> None:
        for state in self.states:
            state.rule.reset()
            if state.recovery is not None:
                state.recovery.reset()


@dataclass(frozen=True)
class _FieldGroup:
    field: str
    window_count: int
    thresholds: tuple[Threshold, ...]


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
        self._series: dict[tuple[Any, ...], tuple[Tags, list[_FieldWindow]]] = {}

    @property
    def series_count(self) -> int:
        return len(self._series)

    def tracks(self, row: Row, tag_names: Sequence[str]) -> bool:
        """Whether the series of ``row`` already has state (seen since the trigger started)."""
        return tuple(row.get(name) for name in tag_names) in self._series

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
            _, windows = self._series_state(row, tag_names)
            for group, state in zip(self._groups, windows, strict=True):
                value = _numeric(row.get(group.field), ignored)
                if value is not None:
                    state.window.add(value)
                    added += 1
        return added

    def process(self, rows: Sequence[Row], tag_names: Sequence[str]) -> BatchResult:
        """Feed a batch of rows (any order) and return what fired."""
        result = BatchResult()
        for row in self._in_time_order(rows, result):
            self._observe(row, tag_names, result)
        return result

    def _in_time_order(self, rows: Sequence[Row], result: BatchResult) -> list[Row]:
        usable = [row for row in rows if isinstance(row, Mapping) and _has_time(row)]
        if len(usable) != len(rows):
            not_mappings = sum(1 for row in rows if not isinstance(row, Mapping))
            result.skipped[SKIP_BAD_ROW] += not_mappings
            result.skipped[SKIP_BAD_TIME] += len(rows) - len(usable) - not_mappings
        usable.sort(key=_time_of)
        return usable

    def _series_state(self, row: Row, tag_names: Sequence[str]) -> tuple[Tags, list[_FieldWindow]]:
        key = tuple(row.get(name) for name in tag_names)
        entry = self._series.get(key)
        if entry is None:
            tags = tuple(
                (name, str(value))
                for name, value in zip(tag_names, key, strict=True)
                if value is not None
            )
            windows = [
                _FieldWindow(
                    group.window_count,
                    group.thresholds,
                    self.state_change_count >= 2,
                    self.recovery_count,
                )
                for group in self._groups
            ]
            entry = (tags, windows)
            self._series[key] = entry
        return entry

    def _observe(self, row: Row, tag_names: Sequence[str], result: BatchResult) -> None:
        tags, windows = self._series_state(row, tag_names)
        time_ns: int = row["time"]
        result.points += 1
        for group, state in zip(self._groups, windows, strict=True):
            value = _numeric(row.get(group.field), result)
            if value is None:
                state.reset_rules()
                continue
            window = state.window
            window.add(value)
            if not window.full:
                continue
            median, mad = window.median_and_mad()
            for threshold_state in state.states:
                threshold = threshold_state.threshold
                k = threshold.k
                outlier = value < median - k * mad or value > median + k * mad
                if outlier:
                    result.outliers[group.field] += 1
                flips = threshold_state.flips
                if flips is not None:
                    flips.update(outlier)
                fired = threshold_state.rule.update(outlier, time_ns)
                if fired:
                    transitions = flips.transitions() if flips is not None else 0
                    result.alerts.append(
                        Alert(
                            table=self.table,
                            field=group.field,
                            tags=tags,
                            threshold=threshold,
                            value=value,
                            median=median,
                            mad=mad,
                            time_ns=time_ns,
                            transitions=transitions,
                            suppressed=flips is not None and transitions >= self.state_change_count,
                        )
                    )
                if threshold_state.recovery is not None:
                    self._watch_recovery(
                        threshold_state.recovery,
                        threshold_state,
                        fired,
                        outlier,
                        group.field,
                        tags,
                        value,
                        median,
                        mad,
                        time_ns,
                        result,
                    )

    def _watch_recovery(
        self,
        recovery: RecoveryWatch,
        state: _ThresholdState,
        fired: bool,
        outlier: bool,
        field: str,
        tags: Tags,
        value: float,
        median: float,
        mad: float,
        time_ns: int,
        result: BatchResult,
    ) -> None:
        """Feed one verdict to a threshold's recovery watch; report ``resolved`` when it ends."""
        # A fired rule has just appended its alert; unless suppressed, it opens an episode.
        opens = fired and not result.alerts[-1].suppressed
        started_ns = recovery.update(outlier, opens, time_ns)
        if started_ns is None:
            return
        flips = state.flips
        result.alerts.append(
            Alert(
                table=self.table,
                field=field,
                tags=tags,
                threshold=state.threshold,
                value=value,
                median=median,
                mad=mad,
                time_ns=time_ns,
                transitions=flips.transitions() if flips is not None else 0,
                started_ns=started_ns,
            )
        )


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
