"""Per-series verdicts, recomputed beside the plugin for the summary and the charts.

The plugin reports alerts (its history rows) but not how many outliers each series had, nor the
band each value was judged against. This module follows the plugin's definition step by step
(DESIGN.md §3, the same ``RollingMAD``): series keyed by the values of the table's tag columns,
rows of a batch taken in time order, only finite int/float values entering a window. It decides
nothing that is reported as an alert: alerts always come from the plugin itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import Tags, alert_id_for
from madcheck.detect.window import RollingMAD

#: Receives (time_ns, value, median, lower, upper, outlier) for each judged value of a series.
TraceSink = Callable[[int, float, float, float, float, bool], None]


@dataclass
class SeriesStats:
    """What one series field did under one threshold; ``alert_id`` is the plugin's id for it."""

    table: str
    field: str
    tags: Tags
    threshold: Threshold
    alert_id: str
    points: int = 0
    outliers: int = 0
    fired: int = 0
    suppressed: int = 0
    resolved: int = 0
    first_ns: int = 0
    last_ns: int = 0

    @property
    def tags_text(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.tags)

    def cells(self) -> list[str]:
        """The summary row as shown in the terminal and the report (resolved last)."""
        return [
            self.tags_text or "(no tags)",
            self.field,
            self.threshold.describe(),
            f"{self.points:,}",
            f"{self.outliers:,}",
            f"{self.fired:,}",
            f"{self.suppressed:,}",
            f"{self.resolved:,}",
        ]

    @property
    def alerts(self) -> int:
        """Firings, notified or suppressed (recoveries are not alerts)."""
        return self.fired + self.suppressed

    def count(self, state: str) -> None:
        """One alert event of this series, by its history ``state``."""
        if state == "firing":
            self.fired += 1
        elif state == "suppressed":
            self.suppressed += 1
        elif state == "resolved":
            self.resolved += 1


class _Judged:
    """One threshold of one series field: its stats and, when charted, where to send values."""

    __slots__ = ("k", "stats", "trace")

    def __init__(self, stats: SeriesStats, trace: TraceSink | None) -> None:
        self.k = stats.threshold.k
        self.stats = stats
        self.trace = trace


def _numeric(raw: object) -> float | None:
    kind = type(raw)
    if kind is not float and kind is not int:
        return None  # bool, str, missing: never enters a window
    try:
        value = float(raw)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


class VerdictTracker:
    """Every series' windows and counts for one table.

    ``traces`` maps alert ids to sinks that receive each judged value of that series (the second
    pass of ``--plot``); without it nothing but counts is kept.
    """

    def __init__(
        self,
        table: str,
        thresholds: Sequence[Threshold],
        traces: dict[str, TraceSink] | None = None,
    ) -> None:
        self.table = table
        groups: dict[tuple[str, int], list[Threshold]] = {}
        for threshold in thresholds:
            groups.setdefault((threshold.field, threshold.window_count), []).append(threshold)
        self._groups = tuple(groups.items())
        self._traces = traces or {}
        self._series: dict[tuple[Any, ...], list[tuple[str, RollingMAD, list[_Judged]]]] = {}
        self.stats: dict[str, SeriesStats] = {}

    def observe(self, rows: Iterable[dict[str, Any]], tag_names: Sequence[str]) -> None:
        """One batch, as the plugin sees it: ``tag_names`` sorted, rows stably by time."""
        for row in sorted(rows, key=_time_of):
            key = tuple(row.get(name) for name in tag_names)
            windows = self._series.get(key)
            if windows is None:
                windows = self._new_series(key, tag_names)
            time_ns: int = row["time"]
            for field_name, window, judged in windows:
                value = _numeric(row.get(field_name))
                if value is None:
                    continue
                window.add(value)
                for entry in judged:
                    entry.stats.points += 1
                    entry.stats.last_ns = time_ns
                    if entry.stats.points == 1:
                        entry.stats.first_ns = time_ns
                if not window.full:
                    continue
                median, mad = window.median_and_mad()
                for entry in judged:
                    lower = median - entry.k * mad
                    upper = median + entry.k * mad
                    outlier = value < lower or value > upper
                    if outlier:
                        entry.stats.outliers += 1
                    if entry.trace is not None:
                        entry.trace(time_ns, value, median, lower, upper, outlier)

    def _new_series(
        self, key: tuple[Any, ...], tag_names: Sequence[str]
    ) -> list[tuple[str, RollingMAD, list[_Judged]]]:
        tags = tuple(
            (name, str(value))
            for name, value in zip(tag_names, key, strict=True)
            if value is not None
        )
        windows = []
        for (field_name, window_count), thresholds in self._groups:
            judged = []
            for threshold in thresholds:
                alert_id = alert_id_for(self.table, field_name, tags, threshold)
                stats = self.stats.get(alert_id)
                if stats is None:
                    stats = SeriesStats(self.table, field_name, tags, threshold, alert_id)
                    self.stats[alert_id] = stats
                judged.append(_Judged(stats, self._traces.get(alert_id)))
            windows.append((field_name, RollingMAD(window_count), judged))
        self._series[key] = windows
        return windows


def _time_of(row: dict[str, Any]) -> int:
    time_ns: int = row["time"]
    return time_ns
