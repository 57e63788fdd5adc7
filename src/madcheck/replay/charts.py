"""One chart per alerting series: the values, the rolling median ± k·MAD band, outliers, alerts.

Memory stays bounded whatever the series' length: at most ``MAX_LINE_POINTS`` values are kept for
the line and the band (every n-th value, n chosen from the point count the first pass found),
while outliers, the points a reader looks for, are kept individually up to ``MAX_OUTLIERS``.
matplotlib is imported only here, and only when a chart is drawn (the ``replay`` extra).
"""

from __future__ import annotations

import io
import math
import re
from array import array
from dataclasses import dataclass, field
from typing import Any

from madcheck.replay.verdicts import SeriesStats

MAX_LINE_POINTS = 20_000
MAX_OUTLIERS = 20_000
INSTALL_HINT = "pip install -e '.[replay]' in the madcheck checkout"


class MissingExtra(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra(
            f"--plot and --report draw charts with matplotlib, which is not installed: "
            f"{INSTALL_HINT}"
        ) from None


@dataclass
class AlertMarks:
    """Where a series alerted, and how (history ``state``), kept up to a cap per series."""

    times: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))
    states: list[str] = field(default_factory=list)


class SeriesTrace:
    """The judged values of one series, thinned to a bounded size; a ``TraceSink``."""

    def __init__(self, expected_points: int) -> None:
        self.stride = max(1, math.ceil(expected_points / MAX_LINE_POINTS))
        self.times = array("q")
        self.values = array("d")
        self.medians = array("d")
        self.lowers = array("d")
        self.uppers = array("d")
        self.outlier_times = array("q")
        self.outlier_values = array("d")
        self.outliers_dropped = 0
        self._seen = 0

    def __call__(
        self, time_ns: int, value: float, median: float, lower: float, upper: float, outlier: bool
    ) -> None:
        if self._seen % self.stride == 0:
            self.times.append(time_ns)
            self.values.append(value)
            self.medians.append(median)
            self.lowers.append(lower)
            self.uppers.append(upper)
        self._seen += 1
        if outlier:
            if len(self.outlier_times) < MAX_OUTLIERS:
                self.outlier_times.append(time_ns)
                self.outlier_values.append(value)
            else:
                self.outliers_dropped += 1


def chart_file_name(stats: SeriesStats) -> str:
    """``cpu_temp_host=a_2.5-20-5_1a2b3c4d.png``: readable, unique by the alert id."""
    threshold = stats.threshold
    condition = f"{threshold.k:g}-{threshold.window_count}-{threshold.threshold_text}"
    text = "_".join(part for part in (stats.table, stats.field, stats.tags_text, condition) if part)
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)[:150] + f"_{stats.alert_id[:8]}.png"


def chart_title(stats: SeriesStats) -> str:
    threshold = stats.threshold
    limit = (
        f"{threshold.count} consecutive outliers"
        if threshold.count is not None
        else f"outliers for {threshold.threshold_text}"
    )
    tags = stats.tags_text or "no tags"
    return (
        f"{stats.table}.{stats.field} [{tags}]  k={threshold.k:g}, "
        f"window {threshold.window_count}, {limit}: "
        f"{stats.fired} fired, {stats.suppressed} suppressed"
        + (f", {stats.resolved} resolved" if stats.resolved else "")
    )


def _datetimes(values: array[int]) -> Any:
    """ns since the epoch as numpy datetimes, which matplotlib draws as dates."""
    import numpy as np

    return np.frombuffer(values, dtype=np.int64).astype("datetime64[ns]")


def render_chart(stats: SeriesStats, trace: SeriesTrace, marks: AlertMarks) -> bytes:
    """The chart as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    k = stats.threshold.k
    figure = Figure(figsize=(11, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes: Any = figure.add_subplot()
    x = _datetimes(trace.times)
    axes.fill_between(
        x, trace.lowers, trace.uppers, color="#9ecae1", alpha=0.5, linewidth=0,
        label=f"median ± {k:g}·MAD",
    )  # fmt: skip
    axes.plot(x, trace.medians, color="#3182bd", linewidth=0.9, linestyle="--", label="median")
    axes.plot(x, trace.values, color="#252525", linewidth=0.8, label=stats.field)
    outliers = len(trace.outlier_times) + trace.outliers_dropped
    axes.scatter(
        _datetimes(trace.outlier_times), trace.outlier_values, s=16, color="#fd8d3c", zorder=3,
        label=f"outliers ({outliers:,})",
    )  # fmt: skip
    for state in _MARK_STYLES:
        _draw_marks(axes, marks, state)
    locator: Any = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel(stats.field)
    axes.set_title(chart_title(stats), fontsize=10, loc="left")
    axes.grid(alpha=0.3)
    axes.margins(y=0.08)
    # Outside the axes: inside, the legend hides exactly the spikes a reader looks for.
    figure.legend(loc="outside lower center", fontsize=8, ncols=7, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


#: state -> (legend label, marker style)
_MARK_STYLES: dict[str, tuple[str, dict[str, Any]]] = {
    "firing": ("alert fired", {"marker": "v", "color": "#d62728", "edgecolors": "black"}),
    "suppressed": ("suppressed", {"marker": "v", "facecolors": "none", "edgecolors": "#636363"}),
    "resolved": ("resolved", {"marker": "^", "color": "#31a354", "edgecolors": "black"}),
}


def _draw_marks(axes: Any, marks: AlertMarks, state: str) -> None:
    chosen = [i for i, kind in enumerate(marks.states) if kind == state]
    if not chosen:
        return
    when = _datetimes(array("q", (marks.times[i] for i in chosen)))
    values = [marks.values[i] for i in chosen]
    label, style = _MARK_STYLES[state]
    axes.scatter(
        when, values, s=90, zorder=4, linewidths=1.2, label=f"{label} ({len(chosen)})", **style
    )
