"""Missing data: which series stopped reporting, and when they came back.

A data-writes trigger only runs when data arrives, so a series that falls silent is never judged.
A scheduled call instead learns each series' last point time (one query, see
``madcheck.plugin.missing``) and hands it here with the call's time. A series whose last point
is ``after_ns`` old or older at that time has a *gap*: one ``firing`` event when the gap is first
seen, none while it lasts, and one ``resolved`` event when a newer point shows up (the caller
decides whether that is sent). Plain objects only: no engine, no SQL, no HTTP.

A series the answer no longer names (silent for longer than the look-back) keeps its open gap,
so that its return is still reported; a series that returns and stops again opens a new gap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from madcheck.config.durations import format_duration_ns
from madcheck.detect.alerts import Tags, human_duration, rfc3339

RULE = "missing"


def missing_alert_id(table: str, tags: Tags, after_ns: int) -> str:
    """A stable id per (table, tags, missing_after), like the ids of the MAD rules: the firing
    and the recovery of one gap share it, and so do the gaps of one series."""
    key = "\x1f".join(
        (table, *(f"{k}={v}" for k, v in tags), f"{RULE}:{format_duration_ns(after_ns)}")
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class MissingEvent:
    """A gap of one series: opened (``firing``, at the call that found it) or over
    (``resolved``, at the newest point that ended it)."""

    table: str
    tags: Tags
    #: time of the last point before the gap
    last_seen_ns: int
    #: firing: the call's time; resolved: the time of the newest point after the gap
    time_ns: int
    #: ``missing_after``
    after_ns: int
    resolved: bool = False

    @property
    def state(self) -> str:
        return "resolved" if self.resolved else "firing"

    @property
    def rule(self) -> str:
        return RULE

    @property
    def silent_ns(self) -> int:
        """How long the series had been silent: at the call (firing), or until the newest point
        after the gap (resolved: at most one call interval more than the gap itself)."""
        return self.time_ns - self.last_seen_ns

    @property
    def alert_id(self) -> str:
        return missing_alert_id(self.table, self.tags, self.after_ns)

    @property
    def tags_text(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.tags)

    @property
    def threshold_text(self) -> str:
        return format_duration_ns(self.after_ns)

    def variables(self) -> dict[str, str]:
        """Template variables (README, "Missing data"); ``$field`` is empty: a gap is the whole
        series' silence, not one field's."""
        return {
            "table": self.table,
            "field": "",
            "tags": self.tags_text,
            "rule": RULE,
            "alert_id": self.alert_id,
            "time": rfc3339(self.time_ns),
            "last_seen": rfc3339(self.last_seen_ns),
            "duration": human_duration(self.silent_ns),
            "missing_after": self.threshold_text,
            "threshold_time": self.threshold_text,
            "threshold_count": "",
        }

    def as_dict(self) -> dict[str, object]:
        """The structured ``alert`` of the notifier payload."""
        context: dict[str, object] = {
            "alert_id": self.alert_id,
            "table": self.table,
            "field": None,
            "tags": dict(self.tags),
            "rule": RULE,
            "threshold": self.threshold_text,
            "time": rfc3339(self.time_ns),
            "last_seen": rfc3339(self.last_seen_ns),
            "duration_s": self.silent_ns / 1e9,
            "state": self.state,
        }
        if self.resolved:
            context["started"] = rfc3339(self.last_seen_ns)
        return context


class GapTracker:
    """The open gaps of one table's series, across calls. Bounded by the number of series the
    table had within the look-back, as the detector's state is."""

    def __init__(self, table: str, after_ns: int) -> None:
        self.table = table
        self.after_ns = after_ns
        #: series -> time of its last point before the gap
        self._open: dict[Tags, int] = {}
        #: the time of the newest call whose answer was applied
        self._latest_call_ns: int | None = None

    @property
    def open_gaps(self) -> int:
        return len(self._open)

    @property
    def threshold_text(self) -> str:
        return format_duration_ns(self.after_ns)

    def carry_over(self, previous: GapTracker) -> None:
        """Keep the open gaps of the tracker this one replaces (the config changed), so that a
        changed template or sender neither re-sends nor forgets them; a changed table starts
        afresh."""
        if previous.table == self.table:
            self._open.update(previous._open)
            self._latest_call_ns = previous._latest_call_ns

    def update(self, last_seen: Mapping[Tags, int], now_ns: int) -> list[MissingEvent]:
        """Compare each series' last point time with ``now_ns``; the events of this call.

        A series whose last point is newer than the one its open gap started from has sent
        data again: the gap is resolved (and, if that point is itself old enough, a new gap
        opens at once). Events come series by series, in the answer's order.

        An answer for a call older than one already applied is stale (overlapping calls,
        ``run_async``: a slow call finishing after the next one) and is ignored: it could only
        reopen a gap the newer answer has closed.
        """
        if self._latest_call_ns is not None and now_ns < self._latest_call_ns:
            return []
        self._latest_call_ns = now_ns
        events: list[MissingEvent] = []
        for tags, seen_ns in last_seen.items():
            started = self._open.get(tags)
            if started is not None and seen_ns > started:
                del self._open[tags]
                events.append(
                    MissingEvent(self.table, tags, started, seen_ns, self.after_ns, resolved=True)
                )
                started = None
            if started is None and now_ns - seen_ns >= self.after_ns:
                self._open[tags] = seen_ns
                events.append(MissingEvent(self.table, tags, seen_ns, now_ns, self.after_ns))
        return events
