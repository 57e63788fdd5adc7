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
import warnings
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from madcheck.detect.alerts import Tags
from madcheck.replay.console import shown
from madcheck.replay.stats import SeriesStats, stats_of_cell

MAX_LINE_POINTS = 5_000
MAX_OUTLIERS = 20_000
#: Incidents of a series drawn again, zoomed, below its chart.
MAX_ZOOMS = 3
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


@dataclass
class Zoom:
    """Every value around one incident, unthinned: the window before the first alert, the
    alert, and a window after it."""

    times: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))
    lowers: array[float] = field(default_factory=lambda: array("d"))
    uppers: array[float] = field(default_factory=lambda: array("d"))
    medians: array[float] = field(default_factory=lambda: array("d"))
    outliers: list[bool] = field(default_factory=list)
    remaining: int = 0

    def add(self, item: tuple[int, float, float, float, float, bool]) -> None:
        time_ns, value, median, lower, upper, outlier = item
        self.times.append(time_ns)
        self.values.append(value)
        self.medians.append(median)
        self.lowers.append(lower)
        self.uppers.append(upper)
        self.outliers.append(outlier)


class SeriesTrace:
    """The judged values of one series under one threshold, thinned to a bounded size, plus an
    unthinned ``Zoom`` around each of its first ``MAX_ZOOMS`` incidents. Fed a batch at a time
    (``extend``); what it keeps does not depend on how the values are split into batches."""

    def __init__(self, expected_points: int, window_count: int, alert_times: array[int]) -> None:
        self.stride = max(1, math.ceil(expected_points / MAX_LINE_POINTS))
        self.times = array("q")
        self.values = array("d")
        self.medians = array("d")
        self.lowers = array("d")
        self.uppers = array("d")
        self.outlier_times = array("q")
        self.outlier_values = array("d")
        self.outliers_dropped = 0
        self.zooms: list[Zoom] = []
        self._seen = 0
        #: the values before an incident that its zoom shows
        self._keep = 2 * window_count
        self._recent: deque[tuple[int, float, float, float, float, bool]] = deque(maxlen=self._keep)
        self._after = window_count
        self._alerts = sorted(set(alert_times))
        self._next_alert = 0
        self._open: Zoom | None = None

    def extend(
        self,
        times: Sequence[int],
        values: Sequence[float],
        medians: Sequence[float],
        lowers: Sequence[float],
        uppers: Sequence[float],
        outliers: Sequence[bool],
    ) -> None:
        """The next judged values, in time order, with their bands and outlier verdicts."""
        if not times:
            return
        first = -self._seen % self.stride  # every stride-th value of the whole series
        stride = self.stride
        self.times.extend(times[first::stride])
        self.values.extend(values[first::stride])
        self.medians.extend(medians[first::stride])
        self.lowers.extend(lowers[first::stride])
        self.uppers.extend(uppers[first::stride])
        self._seen += len(times)
        if any(outliers):
            for index in compress(range(len(times)), outliers):
                if len(self.outlier_times) < MAX_OUTLIERS:
                    self.outlier_times.append(times[index])
                    self.outlier_values.append(values[index])
                else:
                    self.outliers_dropped += 1
        alerts = self._alerts
        index, count = 0, len(times)
        while index < count:
            if self._open is None:
                # No zoom open: up to the value at the next alert only the recent values
                # matter; at it, ``_zoom`` opens one (if any is left to draw).
                upto = count
                if self._next_alert < len(alerts) and len(self.zooms) < MAX_ZOOMS:
                    due = alerts[self._next_alert]
                    upto = next((at for at in range(index, count) if times[at] >= due), count)
                else:
                    self._next_alert = bisect_right(alerts, max(times[index:]), self._next_alert)
                low = max(index, upto - self._keep)
                self._recent.extend(
                    zip(times[low:upto], values[low:upto], medians[low:upto], lowers[low:upto],
                        uppers[low:upto], outliers[low:upto], strict=True)
                )  # fmt: skip
                index = upto
                if index == count:
                    break
            self._zoom(
                times[index], (times[index], values[index], medians[index], lowers[index],
                               uppers[index], outliers[index]),
            )  # fmt: skip
            index += 1

    def _zoom(self, time_ns: int, item: tuple[int, float, float, float, float, bool]) -> None:
        alerts, position = self._alerts, self._next_alert
        at_alert = position < len(alerts) and alerts[position] <= time_ns
        while self._next_alert < len(alerts) and alerts[self._next_alert] <= time_ns:
            self._next_alert += 1
        current = self._open
        if current is not None:
            current.add(item)
            current.remaining = self._after if at_alert else current.remaining - 1
            if current.remaining <= 0:
                self._open = None
        elif at_alert and len(self.zooms) < MAX_ZOOMS:
            zoom = Zoom(remaining=self._after)
            for earlier in self._recent:
                zoom.add(earlier)
            zoom.add(item)
            self.zooms.append(zoom)
            self._open = zoom
        self._recent.append(item)


class ChartObserver:
    """A ``VerdictObserver`` (madcheck.detect.detector) that sends the values of the charted
    series to their ``SeriesTrace``, with the band of each threshold."""

    def __init__(self, table: str, traces: dict[str, SeriesTrace], tags: set[Tags]) -> None:
        self.table = table
        self._traces = traces
        self._tags = tags
        self._traced: dict[int, tuple[Any, bool]] = {}
        self._cells: dict[int, tuple[Any, list[tuple[float, SeriesTrace | None]]]] = {}
        #: (cell, threshold position) -> times of the outliers of the batch being reported
        self._outliers: dict[tuple[int, int], set[int]] = {}

    def traces(self, series: Any) -> bool:
        known = self._traced.get(id(series))
        if known is None or known[0] is not series:
            known = self._traced[id(series)] = (series, series.tags() in self._tags)
        return bool(known[1])

    def entered(self, series: Any, field: str, cell: Any, count: int, last_ns: int) -> None:
        """Counts come from the first pass."""

    def outlier(self, series: Any, field: str, cell: Any, position: int, time_ns: int) -> None:
        if self.traces(series):  # kept until ``judged`` takes them: a batch's worth at most
            self._outliers.setdefault((id(cell), position), set()).add(time_ns)

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
        known = self._cells.get(id(cell))
        if known is None or known[0] is not cell:
            sinks = [
                (stats.threshold.k, self._traces.get(stats.alert_id))
                for stats in stats_of_cell(self.table, field, series, cell)
            ]
            known = self._cells[id(cell)] = (cell, sinks)
        for position, (k, sink) in enumerate(known[1]):
            outliers = self._outliers.pop((id(cell), position), None)
            if sink is None:
                continue
            flags = [time_ns in outliers for time_ns in times] if outliers else [False] * len(times)
            lowers = [median - k * mad for median, mad in zip(medians, mads, strict=True)]
            uppers = [median + k * mad for median, mad in zip(medians, mads, strict=True)]
            sink.extend(times, values, medians, lowers, uppers, flags)


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


BAND_COLOR = "#9ecae1"
LINE_COLOR = "#252525"
MEDIAN_COLOR = "#3182bd"
OUTLIER_COLOR = "#e6550d"


def _y_range(values: Any, lowers: Any, uppers: Any) -> tuple[float, float] | None:
    """The values' range with a margin, widened to the band only where the band stays near the
    data (a band blown up by a huge MAD must not squash the line into a flat stroke)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if not data.size:
        return None
    low, high = float(np.min(data)), float(np.max(data))
    span = high - low or abs(high) or 1.0
    band_low = np.asarray(lowers, dtype=float)
    band_high = np.asarray(uppers, dtype=float)
    if band_low.size:
        near = float(np.nanpercentile(band_low, 5))
        low = min(low, near) if near > low - span else low
        near = float(np.nanpercentile(band_high, 95))
        high = max(high, near) if near < high + span else high
    margin = (high - low or span) * 0.08
    return low - margin, high + margin


def _draw_series(axes: Any, x: Any, values: Any, medians: Any, lowers: Any, uppers: Any,
                 k: float, name: str, width: float) -> None:  # fmt: skip
    """The band filled under everything, its edges, the median, then the values on top."""
    axes.fill_between(
        x, lowers, uppers, color=BAND_COLOR, alpha=0.45, linewidth=0, zorder=1,
        label=f"band: median ± {k:g}·MAD",
    )  # fmt: skip
    axes.plot(x, lowers, color=MEDIAN_COLOR, linewidth=0.4, alpha=0.6, zorder=1.5)
    axes.plot(x, uppers, color=MEDIAN_COLOR, linewidth=0.4, alpha=0.6, zorder=1.5)
    axes.plot(x, medians, color=MEDIAN_COLOR, linewidth=0.8, linestyle="--", zorder=2,
              label="median")  # fmt: skip
    axes.plot(x, values, color=LINE_COLOR, linewidth=width, alpha=0.8, zorder=3,
              label=_plain(name))  # fmt: skip
    limits = _y_range(values, lowers, uppers)
    if limits is not None:
        axes.set_ylim(*limits)


@dataclass
class _Layout:
    """A figure with its axes for charts with ``panels`` zoomed incidents, drawn on again and
    again: making a figure's axes, ticks and tick labels is a third of a chart's time and
    depends on nothing of the data."""

    figure: Any
    axes: Any
    panels: list[Any]
    #: figure fractions: the bottom of the main axes, and one inch
    main_bottom: float
    inch: float

    @classmethod
    def build(cls, panels: int) -> _Layout:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        # Fixed positions (fractions of the figure): matplotlib's automatic layout would cost
        # more than drawing the chart itself.
        height = 6.4 if panels else 4.4
        figure = Figure(figsize=(11, height), dpi=100)
        FigureCanvasAgg(figure)
        inch = 1 / height
        top = 1 - 0.35 * inch
        main_bottom = (2.75 if panels else 1.0) * inch
        axes: Any = figure.add_axes((0.065, main_bottom, 0.92, top - main_bottom))
        _date_axis(axes, 8)
        axes.grid(alpha=0.3)
        width = (0.92 - 0.04 * (panels - 1)) / max(1, panels)
        zoomed = []
        for column in range(panels):
            panel: Any = figure.add_axes(
                (0.065 + column * (width + 0.04), 0.4 * inch, width, 1.45 * inch)
            )
            _date_axis(panel, 4)
            panel.set_title(f"incident {column + 1} (zoomed)", fontsize=9, loc="left", y=1.0)
            panel.grid(alpha=0.3)
            panel.tick_params(labelsize=7)
            zoomed.append(panel)
        return cls(figure, axes, zoomed, main_bottom, inch)

    def clear(self) -> None:
        """Take one chart's data off, leaving the axes as ``build`` made them."""
        for legend in list(self.figure.legends):
            legend.remove()
        for axes in (self.axes, *self.panels):
            for artist in [*axes.lines, *axes.collections]:
                artist.remove()
            axes.relim()  # data limits as a new axes has them: the next chart's alone
            axes.set_autoscaley_on(True)


class ChartCanvas:
    """Draws the charts of one replay, each on the kept figure of its layout (``_Layout``);
    a chart comes out the same as on a figure of its own."""

    def __init__(self) -> None:
        self._layouts: dict[int, _Layout] = {}

    def render(self, stats: SeriesStats, trace: SeriesTrace, marks: AlertMarks) -> bytes:
        """The chart as PNG bytes: the whole series on top, a zoomed panel per incident below."""
        zooms = trace.zooms
        layout = self._layouts.get(len(zooms))
        if layout is None:
            layout = self._layouts[len(zooms)] = _Layout.build(len(zooms))
        try:
            return _render(layout, stats, trace, marks)
        finally:
            layout.clear()


def _render(layout: _Layout, stats: SeriesStats, trace: SeriesTrace, marks: AlertMarks) -> bytes:
    k = stats.threshold.k
    axes = layout.axes
    x = _datetimes(trace.times)
    _draw_series(axes, x, trace.values, trace.medians, trace.lowers, trace.uppers, k,
                 stats.field, 0.45)  # fmt: skip
    outliers = len(trace.outlier_times) + trace.outliers_dropped
    axes.scatter(
        _datetimes(trace.outlier_times), trace.outlier_values, s=9, color=OUTLIER_COLOR,
        alpha=0.7, linewidths=0, zorder=4, label=f"outliers ({outliers:,})",
    )  # fmt: skip
    for state in _MARK_STYLES:
        _draw_marks(axes, marks, state)
    axes.set_ylabel(_plain(stats.field))
    # an explicit y spares matplotlib a layout pass to place the title
    axes.set_title(_plain(chart_title(stats)), fontsize=10, loc="left", y=1.0)
    # Below the axes: inside, the legend hides exactly the spikes a reader looks for.
    layout.figure.legend(
        *axes.get_legend_handles_labels(), loc="lower center", fontsize=8, ncols=7,
        frameon=False, bbox_to_anchor=(0.5, layout.main_bottom - 0.72 * layout.inch),
    )  # fmt: skip
    for panel, zoom in zip(layout.panels, trace.zooms, strict=True):
        zx = _datetimes(zoom.times)
        _draw_series(panel, zx, zoom.values, zoom.medians, zoom.lowers, zoom.uppers, k,
                     stats.field, 1.0)  # fmt: skip
        chosen = [i for i, flag in enumerate(zoom.outliers) if flag]
        panel.scatter(
            zx[chosen], [zoom.values[i] for i in chosen], s=18, color=OUTLIER_COLOR, zorder=4,
        )  # fmt: skip
        for state in _MARK_STYLES:
            _draw_marks(panel, marks, state, between=(zoom.times[0], zoom.times[-1]),
                        legend=False)  # fmt: skip
    return _png(layout.figure)


def _png(figure: Any) -> bytes:
    """The figure as an RGB PNG. Its background is opaque, so the alpha channel ``savefig``
    would write says nothing; without it, and at zlib level 3, the file is smaller and encoded
    in half the time (a sixth of a chart's)."""
    from PIL import Image

    canvas = figure.canvas
    with warnings.catch_warnings():
        # a glyph the font lacks (an emoji in a tag value) is drawn as a box; matplotlib's
        # warning would only clutter the terminal of the replay
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        canvas.draw()
    width, height = canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="png", compress_level=3, dpi=(figure.dpi,) * 2)
    return buffer.getvalue()


def _plain(text: str) -> str:
    """Data as text in matplotlib, which reads ``$...$`` as mathematics: ``$`` escaped, control
    characters shown as escapes."""
    return shown(text).replace("$", r"\$")


def _date_axis(axes: Any, ticks: int) -> None:
    from matplotlib import dates

    untyped: Any = dates
    locator = untyped.AutoDateLocator(minticks=3, maxticks=ticks)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(untyped.ConciseDateFormatter(locator))


#: state -> (legend label, marker style)
_MARK_STYLES: dict[str, tuple[str, dict[str, Any]]] = {
    "firing": ("alert fired", {"marker": "v", "color": "#d62728", "edgecolors": "black"}),
    "suppressed": ("suppressed", {"marker": "v", "facecolors": "none", "edgecolors": "#636363"}),
    "resolved": ("resolved", {"marker": "^", "color": "#31a354", "edgecolors": "black"}),
}


def _draw_marks(
    axes: Any,
    marks: AlertMarks,
    state: str,
    between: tuple[int, int] | None = None,
    legend: bool = True,
) -> None:
    chosen = [
        i
        for i, kind in enumerate(marks.states)
        if kind == state and (between is None or between[0] <= marks.times[i] <= between[1])
    ]
    if not chosen:
        return
    when = _datetimes(array("q", (marks.times[i] for i in chosen)))
    values = [marks.values[i] for i in chosen]
    label, style = _MARK_STYLES[state]
    axes.scatter(
        when, values, s=90, zorder=5, linewidths=1.2,
        label=f"{label} ({len(chosen)})" if legend else None, **style,
    )  # fmt: skip
