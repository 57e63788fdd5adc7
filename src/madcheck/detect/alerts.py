"""What the detector reports when a rule fires."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from madcheck.config.thresholds import Threshold

Tags = tuple[tuple[str, str], ...]


def alert_id_for(table: str, field: str, tags: Tags, threshold: Threshold) -> str:
    """A stable id per (table, field, tags, rule): the same series and rule always get the same id,
    across calls and restarts, so firing and later events can be matched downstream."""
    condition = (
        f"{threshold.field}:{threshold.k!r}:{threshold.window_count}:{threshold.threshold_text}"
    )
    key = "\x1f".join((table, field, *(f"{k}={v}" for k, v in tags), condition))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """An alert event on one series field: a rule fired (``firing``), fired while the series was
    flapping (``suppressed``, not sent), or an alert that was sent is over (``resolved``, with
    ``started_ns`` the time of the alert that opened it and the values of the point that
    completed the recovery)."""

    table: str
    field: str
    tags: Tags
    threshold: Threshold
    value: float
    median: float
    mad: float
    time_ns: int
    transitions: int = 0
    suppressed: bool = False
    started_ns: int | None = None

    @property
    def resolved(self) -> bool:
        return self.started_ns is not None

    @property
    def state(self) -> str:
        """``firing``, ``suppressed`` or ``resolved``, as in payloads and the alert history."""
        if self.started_ns is not None:
            return "resolved"
        return "suppressed" if self.suppressed else "firing"

    @property
    def duration_ns(self) -> int | None:
        """For a resolved event, data time from the first alert to the recovering point."""
        return None if self.started_ns is None else self.time_ns - self.started_ns

    @property
    def rule(self) -> str:
        return self.threshold.rule

    @property
    def lower(self) -> float:
        """The band's lower edge, drawn with the MAD floor if there is one."""
        return self.median - self.threshold.k * self.threshold.effective_mad(self.median, self.mad)

    @property
    def upper(self) -> float:
        return self.median + self.threshold.k * self.threshold.effective_mad(self.median, self.mad)

    @property
    def alert_id(self) -> str:
        return alert_id_for(self.table, self.field, self.tags, self.threshold)

    @property
    def tags_text(self) -> str:
        """``host=server1,region=eu``, as the seed renders ``$tags``."""
        return ",".join(f"{name}={value}" for name, value in self.tags)

    def variables(self) -> dict[str, str]:
        """The template variables of notification texts (documented in the README)."""
        threshold = self.threshold
        return {
            "table": self.table,
            "field": self.field,
            "tags": self.tags_text,
            "threshold_count": str(threshold.count) if threshold.count is not None else "",
            "threshold_time": threshold.threshold_text if threshold.duration_ns else "",
            "value": format_number(self.value),
            "median": format_number(self.median),
            "mad": format_number(self.mad),
            "lower": format_number(self.lower),
            "upper": format_number(self.upper),
            "k": format_number(threshold.k),
            "window_count": str(threshold.window_count),
            "time": rfc3339(self.time_ns),
            "alert_id": self.alert_id,
            "rule": self.rule,
            "severity": threshold.severity,
            "duration": "" if self.duration_ns is None else human_duration(self.duration_ns),
        }

    def as_dict(self) -> dict[str, object]:
        """Structured context for receivers that want more than text (the ``http`` sender)."""
        context: dict[str, object] = {
            "alert_id": self.alert_id,
            "table": self.table,
            "field": self.field,
            "tags": dict(self.tags),
            "rule": self.rule,
            "severity": self.threshold.severity,
            "threshold": self.threshold.threshold_text,
            # Finite values can still give an infinite band (1e308 + 3 * 1e308); JSON has no
            # infinity, so such a number is sent as null rather than making the payload unsendable.
            "value": self.value,
            "median": _finite_or_none(self.median),
            "mad": _finite_or_none(self.mad),
            "lower": _finite_or_none(self.lower),
            "upper": _finite_or_none(self.upper),
            "k": self.threshold.k,
            "window_count": self.threshold.window_count,
            "time": rfc3339(self.time_ns),
            "state": self.state,
        }
        if self.started_ns is not None:
            context["started"] = rfc3339(self.started_ns)
            context["duration_s"] = (self.time_ns - self.started_ns) / 1e9
        return context


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def format_number(value: float) -> str:
    """Short but lossless enough for a human: ``93``, ``20.5``, ``1.234567891e+12``."""
    return format(value, ".10g")


def human_duration(ns: int) -> str:
    """``46m30s``, ``1d2h``, ``250ms``: whole seconds in the largest units, or milliseconds when
    shorter than a second."""
    if ns < 1_000_000_000:
        return f"{ns // 1_000_000}ms" if ns >= 1_000_000 else "0s"
    remaining = ns // 1_000_000_000
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def rfc3339(time_ns: int) -> str:
    """``2026-11-29T20:00:00Z``, with a fraction only when the time has one."""
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{time_ns}ns since epoch"  # beyond what a calendar date can show
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"
