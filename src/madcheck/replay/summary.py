"""The per-series summary a replay prints: which series would have paged, and how often."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from madcheck.replay.console import plural, shown, table_text
from madcheck.replay.incidents import per_series_per_day, rate_text
from madcheck.replay.stats import SeriesStats
from madcheck.replay.stream import StreamCounts

HEADINGS = (
    "series", "field", "threshold", "points", "outliers", "fired", "suppressed", "incidents",
    "not sent", "resolved",
)  # fmt: skip
_NOT_SENT, _RESOLVED = HEADINGS.index("not sent"), HEADINGS.index("resolved")


@dataclass(frozen=True)
class ReplayTotals:
    """The numbers of the line under the table."""

    counts: StreamCounts
    series: int
    fired: int
    suppressed: int
    resolved: int
    #: what the trigger queued for the notifier (groups and storm summaries count once each)
    notifications: int
    #: ``True`` with ``--send``: notifications went to a running notifier
    sent: bool
    seconds: float
    #: alerts noise control did not send, by state: inhibited, silenced, capped
    held: Mapping[str, int] = field(default_factory=dict)
    #: episodes (replay/incidents.py), series with at least one, days of data time
    incidents: int = 0
    series_with_incidents: int = 0
    days: float = 0.0

    @property
    def incident_rate(self) -> float | None:
        """Incidents per series per day."""
        return per_series_per_day(self.incidents, self.series, self.days)

    def describe(self) -> str:
        counts = self.counts
        rate = counts.points / self.seconds if self.seconds > 0 else 0.0
        series = plural(self.series, "series", "series")
        parts = [f"{plural(counts.points, 'point')} of {series} replayed"]
        if counts.bad_lines:
            parts.append(f"{plural(counts.bad_lines, 'bad line')} skipped")
        if counts.other_tables:
            parts.append(f"{plural(counts.other_tables, 'line')} of other tables ignored")
        text = ", ".join(parts)
        text += f"; {plural(self.fired, 'alert')} fired, {self.suppressed:,} suppressed"
        for state, count in sorted(self.held.items()):
            if count:
                text += f", {count:,} {state}"
        if self.resolved:
            text += f", {self.resolved:,} resolved"
        text += (
            f"; {plural(self.incidents, 'incident')} in {self.series_with_incidents:,} of "
            f"{plural(self.series, 'series', 'series')}, "
            f"{rate_text(self.incident_rate)} per series per day over {self.days:.3g} days"
        )
        what = "sent to the notifier" if self.sent else "none sent"
        text += f"; {plural(self.notifications, 'notification')} ({what})"
        return text + f"; {self.seconds:.1f} s ({rate:,.0f} points/s)"


def ranked(stats: Iterable[SeriesStats]) -> list[SeriesStats]:
    """Series that alerted most first, then those with most outliers."""
    return sorted(
        stats, key=lambda s: (-s.alerts, -s.outliers, s.tags_text, s.field, s.threshold.describe())
    )


def series_columns(rows: Sequence[SeriesStats]) -> list[int]:
    """Which ``HEADINGS`` a table of ``rows`` shows: ``not sent`` only when noise control held
    alerts back, ``resolved`` only when recoveries were recorded."""
    shown = [*range(_NOT_SENT)]
    if any(series.held for series in rows):
        shown.append(_NOT_SENT)
    if any(series.resolved for series in rows):
        shown.append(_RESOLVED)
    return shown


def summary_text(rows: list[SeriesStats], limit: int) -> str:
    """The series table (columns: ``series_columns``)."""
    columns = series_columns(rows)
    cells = [[series.cells()[i] for i in columns] for series in rows[:limit]]
    headings = [HEADINGS[i] for i in columns]
    text = table_text("madcheck replay", headings, cells, numeric_from=3)
    if len(rows) > limit:
        more = plural(len(rows) - limit, "more series", "more series")
        text += f"\n{more} not shown (--top to show more)"
    return text


def print_summary(
    stream: TextIO, stats: Iterable[SeriesStats], totals: ReplayTotals, limit: int
) -> None:
    rows = ranked(stats)
    if rows:
        print(summary_text(rows, limit), file=stream)
    print(shown(totals.describe()), file=stream)
