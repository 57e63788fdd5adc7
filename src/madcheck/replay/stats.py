"""Per-series counts of a replay, taken from the plugin's own detector as it judges.

The plugin reports alerts (its history rows) but not how many values and outliers each series
had. Rather than judge every value a second time, the replay hangs a ``StatsObserver`` on the
detector the plugin built (``Detector.observer``, see madcheck.detect.detector): the counts are
those of the verdicts the alerts came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import Tags, alert_id_for
from madcheck.replay.alerts import HELD_STATES


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
    #: episodes, from a firing to its recovery (replay/incidents.py)
    incidents: int = 0
    #: alerts not sent by noise control: inhibited, silenced or capped
    held: int = 0

    @property
    def tags_text(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.tags)

    def cells(self) -> list[str]:
        """The summary row as shown in the terminal and the report (``summary.HEADINGS``)."""
        return [
            self.tags_text or "(no tags)",
            self.field,
            self.threshold.describe(),
            f"{self.points:,}",
            f"{self.outliers:,}",
            f"{self.fired:,}",
            f"{self.suppressed:,}",
            f"{self.incidents:,}",
            f"{self.held:,}",
            f"{self.resolved:,}",
        ]

    @property
    def alerts(self) -> int:
        """Firings, notified, suppressed or held (recoveries are not alerts)."""
        return self.fired + self.suppressed + self.held

    def count(self, state: str) -> None:
        """One alert event of this series, by its history ``state``."""
        if state == "firing":
            self.fired += 1
        elif state == "suppressed":
            self.suppressed += 1
        elif state == "resolved":
            self.resolved += 1
        elif state in HELD_STATES:
            self.held += 1


def stats_of_cell(table: str, field: str, series: Any, cell: Any) -> list[SeriesStats]:
    """One ``SeriesStats`` per threshold of a detector cell, in ``cell.states`` order."""
    tags: Tags = series.tags()
    thresholds: list[Threshold] = [state.threshold for state in cell.states]
    return [
        SeriesStats(table, field, tags, threshold, alert_id_for(table, field, tags, threshold))
        for threshold in thresholds
    ]


class StatsObserver:
    """A ``VerdictObserver`` that counts values and outliers per series and threshold."""

    def __init__(self, table: str) -> None:
        self.table = table
        #: alert id -> counts, for every series field the detector has judged
        self.stats: dict[str, SeriesStats] = {}
        self._cells: dict[int, tuple[Any, list[SeriesStats]]] = {}

    def _of(self, series: Any, field: str, cell: Any) -> list[SeriesStats]:
        known = self._cells.get(id(cell))
        if known is not None and known[0] is cell:
            return known[1]
        entries = stats_of_cell(self.table, field, series, cell)
        for entry in entries:
            self.stats.setdefault(entry.alert_id, entry)
        entries = [self.stats[entry.alert_id] for entry in entries]
        self._cells[id(cell)] = (cell, entries)  # holding cell keeps its id from being reused
        return entries

    def entered(self, series: Any, field: str, cell: Any, count: int, last_ns: int) -> None:
        for entry in self._of(series, field, cell):
            entry.points += count

    def outlier(self, series: Any, field: str, cell: Any, position: int, time_ns: int) -> None:
        self._of(series, field, cell)[position].outliers += 1

    def traces(self, series: Any) -> bool:
        return False

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
        """Never called: ``traces`` is False."""
