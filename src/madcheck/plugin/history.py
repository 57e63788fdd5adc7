"""Alert history written back to the database as rows of ``alerts_table``.

A table of past alerts is the most natural record in a time series database: queryable with
SQL, graphable in Grafana or InfluxDB 3 Explorer, and it survives restarts where the trigger's
cache does not. Rows carry the series' tags plus what the detector saw when the rule fired.

InfluxDB 3 applies all of a call's writes as one write with ``accept_partial=false``, so one line
it cannot take would lose every history row of the call. Every row is therefore made valid first:

- a series tag *key* has each space, comma, ``=``, backslash and control character replaced by
  ``_`` (the engine's ``LineBuilder`` refuses the first three; a backslash would escape the ``=``
  after the key); an empty key becomes ``_``;
- a series tag named like a column of the history row (``field``, ``rule``, ``state``,
  ``alert_id``, ``severity``, ``value``, ``median``, ..., ``duration_s``) or reserved by
  InfluxDB 3 (``time``, ``__chunk_order``) becomes ``tag_<name>``, as does a key that
  sanitising made equal to another;
- a tag *value* has its control characters (line breaks, tabs) replaced by spaces, and a tag
  whose value is empty is left out (line protocol has no empty tag value);

and then the built line is parsed as the engine's write would parse it. A line that still fails
raises :class:`UnwritableHistoryRow`, and the caller skips (and logs) that one row only.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Callable
from typing import Any

from madcheck.detect.alerts import Alert
from madcheck.detect.gaps import MissingEvent
from madcheck.engine.line_builder import LineBuilder as _LocalLineBuilder
from madcheck.engine.lineprotocol import LineProtocolError, parse_line

#: Tags the history adds to the series' own.
_HISTORY_TAGS = ("field", "rule", "state", "alert_id", "severity")
#: Fields of a history row.
_HISTORY_FIELDS = (
    "value",
    "median",
    "mad",
    "lower",
    "upper",
    "k",
    "window_count",
    "threshold",
    "transitions",
    "duration_s",
)
#: Names a series tag must not keep: the row's own columns and InfluxDB 3's reserved ones.
_TAKEN_NAMES = frozenset((*_HISTORY_TAGS, *_HISTORY_FIELDS, "time", "__chunk_order"))

_UNSAFE_KEY_CHARACTERS = re.compile(r"[ ,=\\\x00-\x1f\x7f]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class UnwritableHistoryRow(ValueError):
    """A history row InfluxDB 3 would reject even after sanitising; the row is skipped."""


def _line_builder_class() -> Any:
    """The engine injects its own ``LineBuilder`` into builtins; use it when present so the
    engine's ``write`` gets the type it expects."""
    return getattr(builtins, "LineBuilder", _LocalLineBuilder)


def history_tags(series_tags: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The series' tags as the history row writes them (see the module docstring)."""
    written: list[tuple[str, str]] = []
    used = set(_TAKEN_NAMES)
    for name, value in series_tags:
        key = _UNSAFE_KEY_CHARACTERS.sub("_", name) or "_"
        while key in used:
            key = f"tag_{key}"
        text = _CONTROL_CHARACTERS.sub(" ", str(value))
        if not text:
            continue
        used.add(key)
        written.append((key, text))
    return written


def history_line(table: str, alert: Alert, state: str, *, severity_tag: bool = False) -> Any:
    """One ``LineBuilder`` row describing ``alert`` in ``state`` (firing, suppressed, resolved,
    or a fate the noise-control stages gave it: inhibited, silenced, capped).

    ``severity_tag`` adds the ``severity`` tag: the trigger uses severity levels (without
    them every row would only say ``warning``, and rows stay as they were before levels).

    Raises :class:`UnwritableHistoryRow` (or the builder's own error) for a row the engine
    would reject, so that the caller can leave it out of the call's writes.
    """
    line = _line_builder_class()(table)
    for key, value in history_tags(alert.tags):
        line.tag(key, value)
    for key, value in (
        ("field", alert.field),
        ("rule", alert.rule),
        ("state", state),
        ("alert_id", alert.alert_id),
        ("severity", alert.threshold.severity if severity_tag else ""),
    ):
        text = _CONTROL_CHARACTERS.sub(" ", value)
        if text:
            line.tag(key, text)
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
    _check_writable(line.build())
    return line


def gap_history_line(table: str, event: MissingEvent) -> Any:
    """One ``LineBuilder`` row for a missing-data event: the series' tags, ``rule=missing``,
    ``state`` and ``alert_id`` (no ``field``: the whole series fell silent), fields ``threshold``
    (``missing_after``) and ``duration_s`` (how long the series had been silent), at the call's
    time (firing) or at the point that ended the gap (resolved). Raises as ``history_line``."""
    line = _line_builder_class()(table)
    for key, value in history_tags(event.tags):
        line.tag(key, value)
    line.tag("rule", event.rule)
    line.tag("state", event.state)
    line.tag("alert_id", event.alert_id)
    line.string_field("threshold", event.threshold_text)
    line.float64_field("duration_s", event.silent_ns / 1e9)
    line.time_ns(event.time_ns)
    _check_writable(line.build())
    return line


def record(engine: Any, build_line: Callable[[], Any]) -> str | None:
    """Write the history row ``build_line`` makes (``history_line``, ``gap_history_line``) with
    the call's ``influxdb3_local``; the problem, if the row could not be made or written: that
    row alone is skipped (the history must never cost the alert itself, nor the call's other
    rows). Callers log the problems once per call."""
    try:
        engine.write(build_line())
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _check_writable(text: str) -> None:
    """Parse ``text`` as the engine's write will; one physical line, or it is unwritable."""
    if "\n" in text or "\r" in text:
        raise UnwritableHistoryRow(f"the row would span several lines: {text[:200]!r}")
    try:
        parse_line(text, "ns", default_time_ns=0)
    except (LineProtocolError, ValueError) as error:
        raise UnwritableHistoryRow(f"{error}: {text[:200]!r}") from None
