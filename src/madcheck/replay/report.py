"""``--report FILE.html``: the summary, the alerts and the charts on one page.

The page is self-contained (styles inline, charts as ``data:`` URIs) so it can be mailed or
attached to a ticket and opened anywhere without a network. Every text from the data is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from madcheck.detect.alerts import format_number, rfc3339
from madcheck.replay.alerts import AlertRecord
from madcheck.replay.verdicts import SeriesStats

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.alerting td { font-weight: 600; } tr.suppressed td { color: #777; }
tr.resolved td { color: #31a354; }
figure { margin: 1rem 0; } img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #555; font-size: 0.85rem; }
"""


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes


def _cells(values: Sequence[str], numeric_from: int) -> str:
    return "".join(
        f'<td class="n">{escape(v)}</td>' if i >= numeric_from else f"<td>{escape(v)}</td>"
        for i, v in enumerate(values)
    )


def _summary_rows(stats: Sequence[SeriesStats]) -> str:
    rows = []
    for series in stats:
        css = ' class="alerting"' if series.alerts else ""
        rows.append(f"<tr{css}>{_cells(series.cells(), 3)}</tr>")
    return "\n".join(rows)


def _alert_rows(alerts: Sequence[AlertRecord]) -> str:
    rows = []
    for alert in alerts:
        values = [
            rfc3339(alert.time_ns),
            alert.tags_text or "(no tags)",
            alert.field,
            alert.rule,
            {"firing": "fired"}.get(alert.state, alert.state),
            format_number(alert.value),
            format_number(alert.median),
            format_number(alert.mad),
            format_number(alert.lower),
            format_number(alert.upper),
            format_number(alert.k),
            str(alert.window_count),
        ]
        css = f' class="{escape(alert.state)}"'
        rows.append(f"<tr{css}>{_cells(values, 5)}</tr>")
    return "\n".join(rows)


def build_report(
    heading: str,
    configuration: str,
    totals_text: str,
    stats: Sequence[SeriesStats],
    series_total: int,
    alerts: Sequence[AlertRecord],
    alerts_total: int,
    charts: Sequence[Chart],
) -> str:
    """The HTML page. ``stats``/``alerts`` may be the first of ``series_total``/``alerts_total``."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
        f'<p class="note">{escape(configuration)}</p>',
        f"<p>{escape(totals_text)}</p>",
        "<h2>Series</h2>",
        "<table><thead><tr><th>series</th><th>field</th><th>threshold</th><th>points</th>"
        "<th>outliers</th><th>fired</th><th>suppressed</th><th>resolved</th></tr></thead><tbody>",
        _summary_rows(stats),
        "</tbody></table>",
    ]
    if series_total > len(stats):
        parts.append(f'<p class="note">{series_total - len(stats):,} more series not shown.</p>')
    parts += ["<h2>Alerts</h2>"]
    if alerts:
        parts += [
            "<table><thead><tr><th>time (UTC)</th><th>series</th><th>field</th><th>rule</th>"
            "<th>state</th><th>value</th><th>median</th><th>MAD</th><th>lower</th>"
            "<th>upper</th><th>k</th><th>window</th></tr></thead><tbody>",
            _alert_rows(alerts),
            "</tbody></table>",
        ]
        if alerts_total > len(alerts):
            parts.append(
                f'<p class="note">first {len(alerts):,} of {alerts_total:,} alerts shown; '
                "--alerts FILE writes them all.</p>"
            )
    else:
        parts.append("<p>No alert would have fired.</p>")
    if charts:
        parts.append("<h2>Charts</h2>")
        for chart in charts:
            data = base64.b64encode(chart.png).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{escape(chart.title)}">'
                f"<figcaption>{escape(chart.title)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
