"""``--plot`` and ``--report``: what they keep during the replay and how they are produced after.

During the replay only alert positions (capped per series) and the first alerts (for the report's
table) are kept. Afterwards the series that alerted most, up to ``--plot-limit``, are followed
through a second pass over the input (``runner.trace_pass``) and drawn.
"""

from __future__ import annotations

from pathlib import Path

from madcheck.replay.alerts import AlertRecord
from madcheck.replay.charts import (
    AlertMarks,
    MissingExtra,
    SeriesTrace,
    chart_file_name,
    chart_title,
    render_chart,
    require_matplotlib,
)
from madcheck.replay.console import ReplayConsole
from madcheck.replay.report import Chart, build_report
from madcheck.replay.runner import PassSettings, trace_pass
from madcheck.replay.summary import ReplayTotals, ranked
from madcheck.replay.verdicts import SeriesStats, TraceSink

MARKS_PER_SERIES = 1_000
MARKED_SERIES = 10_000
MARKS_IN_ALL = 200_000  # ~5 MB however many alerts a replay finds
REPORT_ALERTS = 1_000
REPORT_SERIES = 500

__all__ = ["MissingExtra", "Visuals"]


class Visuals:
    """The charts and the report of one replay (either may be off)."""

    def __init__(self, plot_dir: Path | None, report: Path | None, limit: int) -> None:
        self.plot_dir = plot_dir
        self.report = report
        self.limit = max(0, limit)
        self.alerts: list[AlertRecord] = []
        self.alerts_total = 0
        self._marks: dict[str, AlertMarks] = {}
        self._marks_kept = 0

    @property
    def wanted(self) -> bool:
        return self.plot_dir is not None or self.report is not None

    def prepare(self) -> None:
        """Fail before a long replay, not after it: matplotlib missing, a folder not writable."""
        if not self.wanted:
            return
        require_matplotlib()
        if self.plot_dir is not None:
            self.plot_dir.mkdir(parents=True, exist_ok=True)
        if self.report is not None:
            self.report.touch()

    def keep_alert(self, record: AlertRecord) -> None:
        self.alerts_total += 1
        if len(self.alerts) < REPORT_ALERTS:
            self.alerts.append(record)
        marks = self._marks.get(record.alert_id)
        if marks is None:
            if len(self._marks) >= MARKED_SERIES:
                return
            marks = self._marks[record.alert_id] = AlertMarks()
        if len(marks.times) < MARKS_PER_SERIES and self._marks_kept < MARKS_IN_ALL:
            self._marks_kept += 1
            marks.times.append(record.time_ns)
            marks.values.append(record.value)
            marks.states.append(record.state)

    def produce(
        self,
        settings: PassSettings,
        console: ReplayConsole,
        stats: dict[str, SeriesStats],
        totals: ReplayTotals,
    ) -> None:
        ordered = ranked(stats.values())
        charted = [s for s in ordered if s.alerts and s.alert_id in self._marks][: self.limit]
        alerting = sum(1 for s in ordered if s.alerts)
        traces = {s.alert_id: SeriesTrace(s.points) for s in charted}
        if traces:
            sinks: dict[str, TraceSink] = dict(traces)
            trace_pass(settings, console, sinks)
        charts: list[Chart] = []
        for series in charted:
            png = render_chart(series, traces[series.alert_id], self._marks[series.alert_id])
            charts.append(Chart(chart_title(series), png))
            if self.plot_dir is not None:
                (self.plot_dir / chart_file_name(series)).write_bytes(png)
        if len(charted) < alerting:
            console.note(
                f"charts drawn for {len(charted)} of {alerting} alerting series "
                "(those with most alerts; --plot-limit N for more)"
            )
        if self.plot_dir is not None:
            console.note(f"{len(charted)} chart(s) written to {self.plot_dir}")
        if self.report is not None:
            page = build_report(
                "madcheck replay: " + ", ".join(str(path) for path in settings.files),
                console.configuration,
                totals.describe(),
                ordered[:REPORT_SERIES],
                len(ordered),
                self.alerts,
                self.alerts_total,
                charts,
            )
            self.report.write_text(page, encoding="utf-8")
            console.note(f"report written to {self.report}")
