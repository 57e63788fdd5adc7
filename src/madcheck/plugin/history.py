"""Alert history written back to the database as rows of ``alerts_table``.

A table of past alerts is the most natural record in a time series database: queryable with
SQL, graphable in Grafana or InfluxDB 3 Explorer, and it survives restarts where the trigger's
cache does not. Rows carry the series' tags plus what the detector saw when the rule fired.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from madcheck.detect.alerts import Alert
from madcheck.engine.line_builder import LineBuilder as _LocalLineBuilder

#: Tags the history adds to the series' own; a series tag of such a name becomes ``tag_<name>``.
_HISTORY_TAGS = ("field", "rule", "state", "alert_id")


def _line_builder_class() -> Any:
    """The engine injects its own ``LineBuilder`` into builtins; use it when present so the
    engine's ``write`` gets the type it expects."""
    return getattr(builtins, "LineBuilder", _LocalLineBuilder)


def history_line(table: str, alert: Alert, state: str) -> Any:
    """One ``LineBuilder`` row describing ``alert`` in ``state`` (firing, suppressed, resolved)."""
    line = _line_builder_class()(table)
    for name, value in alert.tags:
        line.tag(f"tag_{name}" if name in _HISTORY_TAGS else name, value)
    line.tag("field", alert.field)
    line.tag("rule", alert.rule)
    line.tag("state", state)
    line.tag("alert_id", alert.alert_id)
    numbers = {
        "value": alert.value,
        "median": alert.median,
        "mad": alert.mad,
        "lower": alert.lower,
        "upper": alert.upper,
        "k": alert.threshold.k,
    }
    for name, number in numbers.items():
        if math.isfinite(number):  # a band overflowing to infinity has no row value
            line.float64_field(name, number)
    line.int64_field("window_count", alert.threshold.window_count)
    line.string_field("threshold", alert.threshold.threshold_text)
    line.int64_field("transitions", alert.transitions)
    if alert.duration_ns is not None:  # resolved: how long the alert lasted
        line.float64_field("duration_s", alert.duration_ns / 1e9)
    line.time_ns(alert.time_ns)
    return line
