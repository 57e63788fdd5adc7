"""Incidents, not just fires: what a configuration would cost the people it pages.

A count rule fires again every ``threshold`` outliers while a series stays abnormal, so alerts
fired overstate how often someone is disturbed. An **incident** is one episode: it opens with a
notified firing (a firing suppressed as flapping opens none) and lasts until the series is back
to normal, i.e. until ``recovery_count`` consecutive normal verdicts, which is exactly what the
plugin's ``RecoveryWatch`` (detect/lifecycle.py) decides when ``notify_recovery=true``.

The replay does not re-derive that logic: it has the plugin track recoveries and counts the
episodes from the plugin's own history rows (``firing`` opens, ``resolved`` closes). When the
user's configuration has ``notify_recovery`` off, the replayed trigger runs with it on, the
``resolved`` rows are hidden from what the user sees and their notifications subtracted,
because turning it on changes nothing else the replay shows, with three exceptions:
``repeat_interval`` (a recovery lets the next firing pass the repeat gate at once), ``--send``
(the recoveries would be delivered) and noise control (inhibition, grouping, the storm cap,
silences and maintenance windows see recoveries). Then a second, **shadow** trigger with
recovery on runs beside the user's, fed the same batches, its deliveries captured, and only its
incidents are used.

Rates are per **series** (a field of one tag set, as in the summary's series count) per
**day** of data time: the span from the replay's first point to its last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from madcheck.config.settings import Config
from madcheck.detect.alerts import Tags
from madcheck.replay.alerts import FIRING, RESOLVED, AlertRecord

NS_PER_DAY = 86_400 * 10**9
#: ``--budget`` units: incidents per series per this many days
BUDGET_UNITS = {"d": 1.0, "day": 1.0, "w": 7.0, "week": 7.0, "h": 1 / 24, "hour": 1 / 24}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*/\s*([a-z]+)\s*$")

SeriesKey = tuple[Tags, str]


class BudgetError(ValueError):
    """A ``--budget`` that cannot be read; the message says how to write one."""


@dataclass(frozen=True)
class Budget:
    """Incidents per series per day a user accepts, as written (``1/week``)."""

    per_day: float
    text: str

    def met(self, rate: float | None) -> bool:
        """Whether an incidents-per-series-per-day ``rate`` fits (None: no data time to judge)."""
        return rate is not None and rate <= self.per_day * (1 + 1e-9)


def parse_budget(text: str) -> Budget:
    """``1/day``, ``1/week``, ``3/d``, ``0.5/w``, ``/week`` -> incidents per series per day."""
    match = _BUDGET.match(text.lower())
    if match is None or match.group(2) not in BUDGET_UNITS:
        raise BudgetError(
            f"--budget {text!r}: expected incidents per series per period, such as 1/day, "
            "1/week, 3/d or 2/h (periods: h, d, w, hour, day, week)"
        )
    count = float(match.group(1)) if match.group(1) else 1.0
    if count <= 0:
        raise BudgetError(f"--budget {text!r}: the number of incidents must be positive")
    return Budget(count / BUDGET_UNITS[match.group(2)], text.strip())


class DataSpan:
    """First and last data time of the replayed rows (every admitted row has a time)."""

    __slots__ = ("first_ns", "last_ns")

    def __init__(self) -> None:
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        times = list(map(itemgetter("time"), rows))
        low, high = min(times), max(times)
        if self.first_ns is None or low < self.first_ns:
            self.first_ns = low
        if self.last_ns is None or high > self.last_ns:
            self.last_ns = high

    @property
    def days(self) -> float:
        if self.first_ns is None or self.last_ns is None:
            return 0.0
        return (self.last_ns - self.first_ns) / NS_PER_DAY


@dataclass
class IncidentCount:
    """The episodes of one trigger, from its history rows (recovery tracking on)."""

    total: int = 0
    #: alert id -> incidents
    by_alert: dict[str, int] = field(default_factory=dict)
    #: series -> incidents (all thresholds of that series' field)
    by_series: dict[SeriesKey, int] = field(default_factory=dict)
    _open: set[str] = field(default_factory=set)

    def add(self, record: AlertRecord) -> None:
        if record.state == RESOLVED:
            self._open.discard(record.alert_id)
            return
        if record.state != FIRING or record.alert_id in self._open:
            return  # a suppressed firing opens nothing; a repeat belongs to the open episode
        self._open.add(record.alert_id)
        self.total += 1
        self.by_alert[record.alert_id] = self.by_alert.get(record.alert_id, 0) + 1
        key = (record.tags, record.field)
        self.by_series[key] = self.by_series.get(key, 0) + 1

    @property
    def series_with_incidents(self) -> int:
        return len(self.by_series)


def per_series_per_day(incidents: int, series: int, days: float) -> float | None:
    """The rate a budget is checked against; None when there is no series or no data time."""
    if series <= 0 or days <= 0:
        return None
    return incidents / series / days


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{rate:.3g}" if rate < 100 else f"{rate:,.0f}"


@dataclass(frozen=True)
class Tracking:
    """How a pass learns the incidents of the user's trigger (see the module docstring)."""

    #: the user's trigger, run with recovery on (None: the user's own arguments, unchanged)
    visible: dict[str, str]
    #: a shadow trigger with recovery on, or None when the visible one tracks recoveries
    shadow: dict[str, str] | None
    #: the visible trigger's ``resolved`` rows are the user's (their notify_recovery is on)
    resolved_shown: bool


def with_recovery(arguments: Mapping[str, str]) -> dict[str, str]:
    tracked = dict(arguments)
    tracked["notify_recovery"] = "true"
    return tracked


def tracking(
    arguments: Mapping[str, str],
    config: Config,
    sent: bool,
    shadow_arguments: Mapping[str, str] | None = None,
    plain: bool = True,
) -> Tracking:
    """Which trigger(s) to run so the incidents are the plugin's own.

    ``shadow_arguments`` are the user's arguments delivering to a capture endpoint (they differ
    from ``arguments`` only with ``--send``); ``plain``: no noise control is configured (its
    inhibition, grouping and storm cap see recoveries, so with it a shadow is needed).
    """
    if config.notify_recovery:
        return Tracking(dict(arguments), None, True)
    if plain and not sent and not config.repeat_interval_ns:
        return Tracking(with_recovery(arguments), None, False)
    return Tracking(dict(arguments), with_recovery(shadow_arguments or arguments), False)


def series_keys(stats: Iterable[Any]) -> set[SeriesKey]:
    """The series (tags, field) a replay judged, from its ``SeriesStats``."""
    return {(entry.tags, entry.field) for entry in stats}


class IncidentTaps:
    """The triggers a pass runs for some configurations, and the ``RecordTap`` that counts
    each configuration's incidents from them (hiding internal recovery rows)."""

    def __init__(self, trackings: list[Tracking]) -> None:
        self.counts = [IncidentCount() for _ in trackings]
        #: per configuration, the internal recoveries hidden (each was queued as a notification)
        self.hidden = [0 for _ in trackings]
        #: the visible triggers first, in order, then the shadows
        self.arguments: list[dict[str, str]] = [t.visible for t in trackings]
        #: trigger position -> (configuration it counts incidents for or None, hides resolved)
        self._roles: list[tuple[int | None, bool]] = [
            (None, False) if t.shadow is not None else (index, not t.resolved_shown)
            for index, t in enumerate(trackings)
        ]
        for index, t in enumerate(trackings):
            if t.shadow is not None:
                self.arguments.append(t.shadow)
                self._roles.append((index, False))

    def __call__(self, position: int, record: AlertRecord) -> bool:
        counted, hides_resolved = self._roles[position]
        if counted is not None:
            self.counts[counted].add(record)
        if hides_resolved and record.state == RESOLVED:
            assert counted is not None
            self.hidden[counted] += 1
            return False
        return True
