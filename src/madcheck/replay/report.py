"""``--report FILE.html``: one page a person reads from the top.

It opens with what was replayed and what came out, then an index of the series that alerted,
each linked to its section: the chart (the whole series above, each incident zoomed below) and
the series' alerts, the first rows shown and the rest folded in a ``<details>``. Then the table
of every series. The page is self-contained (styles inline, charts as ``data:`` URIs) so it can
be mailed or attached to a ticket and opened anywhere without a network. Every text from the
data or the command line is escaped, control characters included.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from madcheck.detect.alerts import format_number, rfc3339
from madcheck.replay.alerts import AlertRecord
from madcheck.replay.console import plural, shown
from madcheck.replay.stats import SeriesStats
from madcheck.replay.summary import HEADINGS, series_columns

#: Alerts of a series shown before the rest are folded away.
ALERTS_SHOWN = 5

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
h3 { font-size: 1rem; margin: 1.8rem 0 0.4rem; }
.summary { font-size: 1.05rem; background: #f4f6f8; padding: 0.7rem 1rem; border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.4rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }
th { background: #f4f6f8; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.alerting td { font-weight: 600; } tr.suppressed td { color: #777; }
tr.resolved td { color: #2b7a3d; }
ol.index li { margin: 0.15rem 0; }
figure { margin: 0.5rem 0; } img { max-width: 100%; border: 1px solid #ddd; }
details summary { cursor: pointer; color: #3366aa; margin: 0.3rem 0; }
.note { color: #555; font-size: 0.85rem; }
dl.config { display: grid; grid-template-columns: max-content auto; gap: 0.1rem 1rem;
            font-size: 0.9rem; } dl.config dt { color: #555; } dl.config dd { margin: 0; }
"""

_ALERT_HEADINGS = (
    "time (UTC)", "state", "rule", "value", "median", "MAD", "lower", "upper", "transitions",
)  # fmt: skip


@dataclass(frozen=True)
class Chart:
    alert_id: str
    title: str
    png: bytes


def text(value: str) -> str:
    """Data as HTML text: markup escaped, control characters shown as escapes."""
    return escape(shown(value))


def _cells(values: Sequence[str], numeric_from: int, tag: str = "td") -> str:
    return "".join(
        f'<{tag} class="n">{text(v)}</{tag}>' if i >= numeric_from else f"<{tag}>{text(v)}</{tag}>"
        for i, v in enumerate(values)
    )


def _table(
    headings: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], numeric_from: int
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "\n".join(
        f'<tr class="{escape(css)}">{_cells(cells, numeric_from)}</tr>' for css, cells in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _alert_cells(alert: AlertRecord) -> tuple[str, list[str]]:
    return alert.state, [
        rfc3339(alert.time_ns),
        alert.state,
        f"{alert.rule} {alert.threshold}",
        format_number(alert.value),
        format_number(alert.median),
        format_number(alert.mad),
        format_number(alert.lower),
        format_number(alert.upper),
        str(alert.transitions),
    ]


def _alerts_block(alerts: Sequence[AlertRecord], total: int) -> str:
    if not alerts:
        return ""
    shown_rows = [_alert_cells(a) for a in alerts[:ALERTS_SHOWN]]
    parts = [_table(_ALERT_HEADINGS, shown_rows, 3)]
    rest = alerts[ALERTS_SHOWN:]
    if rest:
        parts.append(
            f"<details><summary>{escape(plural(len(rest), 'more alert event'))}</summary>"
            + _table(_ALERT_HEADINGS, [_alert_cells(a) for a in rest], 3)
            + "</details>"
        )
    if total > len(alerts):
        parts.append(
            f'<p class="note">first {len(alerts):,} of {total:,} alert events of this series '
            "shown; --alerts FILE writes them all.</p>"
        )
    return "\n".join(parts)


def _anchor(alert_id: str) -> str:
    return f"series-{escape(alert_id)}"


def build_report(
    heading: str,
    configuration: Mapping[str, str],
    totals_text: str,
    stats: Sequence[SeriesStats],
    series_total: int,
    alerts: Mapping[str, Sequence[AlertRecord]],
    charts: Sequence[Chart],
) -> str:
    """The HTML page. ``stats`` may be the first of ``series_total``; ``alerts`` holds the kept
    alert events of each series by alert id."""
    alerting = [s for s in stats if s.alerts or s.resolved]
    by_id = {chart.alert_id: chart for chart in charts}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{text(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{text(heading)}</h1>",
        f'<p class="summary">{text(totals_text)}</p>',
        '<dl class="config">',
        *(f"<dt>{text(name)}</dt><dd>{text(value)}</dd>" for name, value in configuration.items()),
        "</dl>",
    ]
    if alerting:
        parts.append(
            f"<h2>{escape(plural(len(alerting), 'alerting series', 'alerting series'))}</h2>"
        )
        parts.append('<ol class="index">')
        for series in alerting:
            parts.append(
                f'<li><a href="#{_anchor(series.alert_id)}">{text(series.tags_text or "(no tags)")}'
                f" · {text(series.field)} · {text(series.threshold.describe())}</a>: "
                f"{escape(plural(series.fired, 'alert'))} fired, {series.suppressed:,} suppressed"
                + (f", {series.resolved:,} resolved" if series.resolved else "")
                + ("" if series.alert_id in by_id else " (no chart: --plot-limit)")
                + "</li>"
            )
        parts.append("</ol>")
        for series in alerting:
            parts.append(
                f'<h3 id="{_anchor(series.alert_id)}">{text(series.tags_text or "(no tags)")} · '
                f"{text(series.field)} · {text(series.threshold.describe())}</h3>"
            )
            chart = by_id.get(series.alert_id)
            if chart is not None:
                data = base64.b64encode(chart.png).decode("ascii")
                parts.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{text(chart.title)}">'
                    "</figure>"
                )
            kept = alerts.get(series.alert_id, ())
            parts.append(_alerts_block(kept, series.alerts + series.resolved))
    else:
        parts.append("<p>No alert would have fired.</p>")
    parts.append("<h2>Every series</h2>")
    columns = series_columns(stats)
    rows = [("alerting" if s.alerts else "", [s.cells()[i] for i in columns]) for s in stats]
    parts.append(_table([HEADINGS[i] for i in columns], rows, 3))
    if series_total > len(stats):
        parts.append(f'<p class="note">{series_total - len(stats):,} more series not shown.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
