"""``--plot`` and ``--report``: what they keep during the replay and how they are produced after.

During the replay only alert positions (capped per series) and the alerts for the report's tables
(capped) are kept. Afterwards the series that alerted most, up to ``--plot-limit``, are followed
through a second pass over the input (``runner.trace_pass``: the plugin's detector, tracing only
those series and parsing only their lines) and drawn.
"""

from __future__ import annotations

from pathlib import Path

from madcheck.replay.alerts import AlertRecord
from madcheck.replay.charts import (
    AlertMarks,
    ChartCanvas,
    ChartObserver,
    MissingExtra,
    SeriesTrace,
    chart_file_name,
    chart_title,
    require_matplotlib,
)
from madcheck.replay.console import ReplayConsole, plural
from madcheck.replay.report import Chart, build_report
from madcheck.replay.runner import PassSettings, trace_pass
from madcheck.replay.stats import SeriesStats
from madcheck.replay.summary import ReplayTotals, ranked

MARKS_PER_SERIES = 1_000
MARKED_SERIES = 10_000
MARKS_IN_ALL = 200_000  # ~5 MB however many alerts a replay finds
REPORT_ALERTS_PER_SERIES = 200
REPORT_ALERTS = 20_000
REPORT_SERIES = 500

__all__ = ["MissingExtra", "Visuals"]


class Visuals:
    """The charts and the report of one replay (either may be off)."""

    def __init__(self, plot_dir: Path | None, report: Path | None, limit: int) -> None:
        self.plot_dir = plot_dir
        self.report = report
        self.limit = max(0, limit)
        #: alert id -> the series' first alert events, for the report
        self.alerts: dict[str, list[AlertRecord]] = {}
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
        kept = self.alerts.setdefault(record.alert_id, [])
        if len(kept) < REPORT_ALERTS_PER_SERIES and self.alerts_total <= REPORT_ALERTS:
            kept.append(record)
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
        configuration: dict[str, str],
    ) -> None:
        ordered = ranked(stats.values())
        charted = [s for s in ordered if s.alerts and s.alert_id in self._marks][: self.limit]
        alerting = sum(1 for s in ordered if s.alerts)
        traces = {
            s.alert_id: SeriesTrace(
                s.points, s.threshold.window_count, self._marks[s.alert_id].times
            )
            for s in charted
        }
        if traces:
            tags = {s.tags for s in charted}
            observer = ChartObserver(settings.inputs.measurement, traces, tags)
            trace_pass(settings, console, observer, tags)
        charts: list[Chart] = []
        canvas = ChartCanvas()
        for series in charted:
            png = canvas.render(series, traces[series.alert_id], self._marks[series.alert_id])
            charts.append(Chart(series.alert_id, chart_title(series), png))
            if self.plot_dir is not None:
                (self.plot_dir / chart_file_name(series)).write_bytes(png)
        if len(charted) < alerting:
            console.note(
                f"charts drawn for {len(charted)} of {alerting} alerting series "
                "(those with most alerts; --plot-limit N for more)"
            )
        if self.plot_dir is not None:
            console.note(f"{plural(len(charted), 'chart')} written to {self.plot_dir}")
        if self.report is not None:
            page = build_report(
                "madcheck replay: " + ", ".join(str(path) for path in settings.files),
                configuration,
                totals.describe(),
                ordered[:REPORT_SERIES],
                len(ordered),
                self.alerts,
                charts,
            )
            self.report.write_text(page, encoding="utf-8")
            console.note(f"report written to {self.report}")
