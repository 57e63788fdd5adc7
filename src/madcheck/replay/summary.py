"""The per-series summary a replay prints: which series would have paged, and how often."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from madcheck.replay.stream import StreamCounts
from madcheck.replay.verdicts import SeriesStats


@dataclass(frozen=True)
class ReplayTotals:
    """The numbers of the line under the table."""

    counts: StreamCounts
    series: int
    fired: int
    suppressed: int
    resolved: int
    #: Notifications the capture endpoint took; ``None`` when they were sent (``--send``).
    captured: int | None
    seconds: float

    def describe(self) -> str:
        counts = self.counts
        rate = counts.points / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{counts.points:,} points of {self.series:,} series replayed"]
        if counts.bad_lines:
            parts.append(f"{_count(counts.bad_lines, 'bad line')} skipped")
        if counts.other_tables:
            parts.append(f"{counts.other_tables:,} lines of other tables ignored")
        text = ", ".join(parts)
        text += f"; {_count(self.fired, 'alert')} fired, {self.suppressed:,} suppressed"
        if self.resolved:
            text += f", {self.resolved:,} resolved"
        if self.captured is not None:
            text += f"; {self.captured:,} notifications captured (none sent)"
        return text + f"; {self.seconds:.1f} s ({rate:,.0f} points/s)"


def ranked(stats: Iterable[SeriesStats]) -> list[SeriesStats]:
    """Series that alerted most first, then those with most outliers."""
    return sorted(
        stats, key=lambda s: (-s.alerts, -s.outliers, s.tags_text, s.field, s.threshold.describe())
    )


def summary_table(rows: list[SeriesStats], limit: int) -> Table:
    """The series table; a ``resolved`` column only when recoveries were recorded."""
    table = Table(title="madcheck replay", title_justify="left")
    table.add_column("series")
    table.add_column("field")
    table.add_column("threshold")
    with_resolved = any(series.resolved for series in rows)
    counts = ("points", "outliers", "fired", "suppressed", "resolved")
    for name in counts if with_resolved else counts[:-1]:
        table.add_column(name, justify="right")
    for series in rows[:limit]:
        cells = series.cells() if with_resolved else series.cells()[:-1]
        table.add_row(*cells, style="bold" if series.alerts else None)
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit:,} more series not shown (--top to show more)"
    return table


def print_summary(
    console: Console, stats: Iterable[SeriesStats], totals: ReplayTotals, limit: int
) -> None:
    rows = ranked(stats)
    if rows:
        console.print(summary_table(rows, limit))
    console.print(totals.describe(), highlight=False, soft_wrap=True)


def _count(n: int, noun: str) -> str:
    """``1 alert``, ``2 alerts``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
