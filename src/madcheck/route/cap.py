"""The storm cap: at most ``max_notifications_per_minute`` notifications per trigger.

Minutes are fixed windows of the wall clock, each starting at the first notification after the
previous one ended. Within a window the first ``limit`` notifications pass; every later alert is
held: written to the alerts table as ``capped`` and counted, per series, in one summary
notification that goes out when the window ends (the background sender sends it without waiting
for a write). So a storm costs at most ``limit + 1`` notifications a minute and nothing is lost:
every held alert is a row of the table, and the summary names how many and the series held most.

Wall clock, like ``group_wait``: a rate is about the receiving humans' minute, and the summary must
go out even if the storm's writes stop.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from madcheck.config.thresholds import LEVELS
from madcheck.detect.alerts import Alert

WINDOW_S = 60.0
#: series named in a summary
SHOWN_SERIES = 5
#: series counted per window; past it further series are counted only in the total
MAX_COUNTED_SERIES = 10_000


@dataclass
class Held:
    """What one window held back: the summary's content, and the glue's handle on it."""

    window_end: float
    table: str
    total: int = 0
    top_rank: int = 0
    series: Counter[str] = field(default_factory=Counter)
    handle: object = None

    def add(self, alert: Alert) -> None:
        self.total += 1
        self.top_rank = max(self.top_rank, alert.threshold.rank)
        name = f"{alert.field} [{alert.tags_text or 'no tags'}]"
        if name in self.series or len(self.series) < MAX_COUNTED_SERIES:
            self.series[name] += 1

    @property
    def severity(self) -> str:
        return LEVELS[self.top_rank]

    def text(self, limit: int) -> str:
        common = self.series.most_common(SHOWN_SERIES)
        detail = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in common)
        others = len(self.series) - len(common)
        if others > 0:
            detail += f" and {others} more series"
        return (
            f"MAD storm cap: {self.total} alert(s) on {self.table} held back this minute "
            f"(max_notifications_per_minute={limit}; every one is in the alerts table as "
            f"capped): {detail}"
        )

    def context(self, limit: int) -> dict[str, object]:
        return {
            "state": "capped",
            "kind": "storm_summary",
            "table": self.table,
            "severity": self.severity,
            "count": self.total,
            "limit": limit,
            "series": [{"series": name, "count": n} for name, n in self.series.most_common(50)],
        }


class StormCap:
    """Counts notifications per window; holds alerts past ``limit`` for the window's summary."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._window_end = 0.0
        self._sent = 0
        self.held: Held | None = None

    def admit(self) -> bool:
        """Whether one more notification may go out now (counting it if so)."""
        now = self.clock()
        if now >= self._window_end:
            self._window_end = now + WINDOW_S
            self._sent = 0
        if self._sent < self.limit:
            self._sent += 1
            return True
        return False

    def current(self) -> Held | None:
        """This window's summary, if one was started; the caller adds the held alert to it
        (``Held.add``) if its message can still take it."""
        held = self.held
        return held if held is not None and held.window_end == self._window_end else None

    def restart(self, alert: Alert) -> Held:
        """A new summary holding ``alert`` (none yet this window, or it went out early)."""
        self.held = Held(self._window_end, alert.table)
        self.held.add(alert)
        return self.held
