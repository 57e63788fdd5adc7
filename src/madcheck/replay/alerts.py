"""The alerts of a replay, read back from the history rows the plugin wrote.

The plugin writes every alert, fired or suppressed, to its ``alerts_table`` (see
``madcheck.plugin.history``). Reading those writes, rather than recomputing alerts, means the
replay shows exactly what the deployed trigger would have done.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from madcheck.detect.alerts import Tags, rfc3339
from madcheck.engine.lineprotocol import LineProtocolError, parse_line
from madcheck.plugin.history import _HISTORY_TAGS

#: Columns of ``--alerts`` files, in order; ``tags`` is ``host=a,region=eu`` in CSV.
COLUMNS = (
    "time",
    "tags",
    "field",
    "value",
    "median",
    "mad",
    "lower",
    "upper",
    "k",
    "window_count",
    "rule",
    "threshold",
    "state",
    "suppressed",
    "transitions",
    "duration_s",
    "alert_id",
    "severity",
)

FIRING, SUPPRESSED, RESOLVED = "firing", "suppressed", "resolved"
#: alerts the noise-control stages kept from being sent (docs/noise-control.md)
HELD_STATES = ("inhibited", "silenced", "capped")


@dataclass(frozen=True)
class AlertRecord:
    """One alert event as the plugin recorded it: ``firing`` (notified), ``suppressed`` (flapping,
    not notified), ``resolved`` (a recovery, with ``notify_recovery=true``), or one of
    ``HELD_STATES`` (not sent: a higher level was firing, a silence or the storm cap)."""

    time_ns: int
    tags: Tags
    field: str
    rule: str
    state: str
    alert_id: str
    value: float
    median: float
    mad: float
    lower: float
    upper: float
    k: float
    window_count: int
    threshold: str
    transitions: int
    #: ``resolved`` events: data time from the first firing to the recovery.
    duration_s: float | None = None
    #: the condition's level, for triggers whose conditions name one
    severity: str | None = None

    @property
    def suppressed(self) -> bool:
        return self.state == SUPPRESSED

    @property
    def tags_text(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.tags)

    def as_row(self) -> dict[str, Any]:
        """The ``--alerts`` row: JSON-ready, ``tags`` as an object, numbers ``clean``."""
        return {
            "time": rfc3339(self.time_ns),
            "tags": dict(self.tags),
            "field": self.field,
            "value": clean(self.value),
            "median": clean(self.median),
            "mad": clean(self.mad),
            "lower": clean(self.lower),
            "upper": clean(self.upper),
            "k": clean(self.k),
            "window_count": self.window_count,
            "rule": self.rule,
            "threshold": self.threshold,
            "state": self.state,
            "suppressed": self.suppressed,
            "transitions": self.transitions,
            "duration_s": None if self.duration_s is None else clean(self.duration_s),
            "alert_id": self.alert_id,
            "severity": self.severity,
        }


def escaped_tags(tags: Tags) -> str:
    """``host=a,region=eu``, with ``\\``, ``,`` and ``=`` in names and values escaped by a
    backslash as in line protocol, so any tag reads back unambiguously."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")

    return ",".join(f"{escape(name)}={escape(value)}" for name, value in tags)


def clean(number: float) -> float:
    """``number`` without the noise of floating-point arithmetic: ``0.346`` for the
    ``0.3460000000000001`` that ``median + k * mad`` gives, ``0.2`` for the
    ``0.1999999999999993`` of ``10.2 - 10.0``. A value whose shortest exact text has at most
    15 significant digits (every number a person or a sensor writes) is kept as it is; one that
    needs 16 or 17 came from arithmetic and is rounded to 12, far below any real resolution.
    Written out, Python's ``repr`` (JSON, CSV) is then the shortest text that reads back."""
    if not math.isfinite(number) or number == 0:
        return number
    mantissa = repr(number).lstrip("-").split("e")[0].replace(".", "").strip("0")
    if len(mantissa) <= 15:
        return number
    return float(f"{number:.12g}")


def parse_history_line(line: str, table: str) -> AlertRecord | None:
    """An ``AlertRecord`` from one row of the history ``table``, or ``None`` if it is not one."""
    try:
        point = parse_line(line, "ns")
    except LineProtocolError:
        return None
    if point.measurement != table:
        return None
    tags = dict(point.tags)
    fields = point.fields
    try:
        record = AlertRecord(
            time_ns=point.time_ns,
            field=tags.pop("field"),
            rule=tags.pop("rule"),
            state=tags.pop("state"),
            alert_id=tags.pop("alert_id"),
            severity=tags.pop("severity", None),
            tags=tuple((_series_tag(name), value) for name, value in tags.items()),
            value=float(fields["value"]),
            median=float(fields["median"]),
            mad=float(fields["mad"]),
            lower=float(fields["lower"]),
            upper=float(fields["upper"]),
            k=float(fields["k"]),
            window_count=int(fields["window_count"]),
            threshold=str(fields["threshold"]),
            transitions=int(fields.get("transitions", 0)),
            duration_s=float(fields["duration_s"]) if "duration_s" in fields else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
    return record


def _series_tag(name: str) -> str:
    """History tags shadow series tags of the same name, which are written as ``tag_<name>``."""
    if name.startswith("tag_") and name[4:] in _HISTORY_TAGS:
        return name[4:]
    return name


class AlertWriter:
    """Streams alerts to a ``.jsonl`` or ``.csv`` file as the replay finds them."""

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".json", ".csv"):
            raise ValueError(f"--alerts {path}: the file name must end in .jsonl or .csv")
        self.path = path
        self._handle: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._csv = None
        if suffix == ".csv":
            self._csv = csv.writer(self._handle)
            self._csv.writerow(COLUMNS)

    def write(self, record: AlertRecord) -> None:
        row = record.as_row()
        if self._csv is None:
            self._handle.write(json.dumps(row) + "\n")
            return
        row["tags"] = escaped_tags(record.tags)
        row["suppressed"] = "true" if record.suppressed else "false"
        row["duration_s"] = "" if row["duration_s"] is None else row["duration_s"]
        self._csv.writerow([row[column] for column in COLUMNS])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AlertWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
