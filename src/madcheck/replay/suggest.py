"""``--suggest FIELD``: thresholds chosen from history, within an incident budget.

The search replays a grid of candidate conditions on FIELD in **one pass** over the input,
through the plugin itself (the sweep's machinery, replay/runner.py): conditions on one field
with the same ``window_count`` share one window in the plugin's detector, so each trigger of
the pass carries every ``k`` x count threshold of one window (and one ``mad_floor``), and the
grid costs a few triggers, not one per candidate. Every trigger runs with recovery tracking on,
so incidents are the plugin's own episodes (replay/incidents.py).

**What "best" means.** The tool cannot know which deviations are real, so the objective is:

1. **Within the budget**: incidents per series per day (all series, data time) at most
   ``--budget``.
2. **Most strong incidents**: incidents whose largest deviation, in the window's own MAD (the
   floored MAD when a floor is set), reaches ``STRONG_MADS``. For normal data MAD = 0.6745
   sigma, so 8 MADs is 5.4 sigma: calm normal data goes that far about once in 15 million
   points (more often in small windows, whose MAD wobbles); such a deviation is news whatever
   the configuration. A deviation measured against a
   MAD of 0 (no floor) counts as none: with MAD 0 every change is "infinitely" far.
3. **Fewest incidents** in all: what is not strong is mostly noise.
4. Then the larger ``k``, count and window (the more conservative of equals).

When no candidate fits the budget, the ones with the fewest incidents per series per day are
shown, and the message says so. When the MAD is often 0 at the start of the input
(``ZERO_MAD_SHARE`` of sampled windows: the band has no width and any change is an outlier),
every candidate gets a ``mad_floor``, of ``FLOOR_FACTORS`` times the typical non-zero MAD.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from madcheck.config.thresholds import Threshold
from madcheck.engine.api import LogRecord
from madcheck.engine.catalog import SchemaQueries
from madcheck.replay.alerts import FIRING, RESOLVED, AlertRecord
from madcheck.replay.console import ReplayConsole, plural, shown, table_text
from madcheck.replay.incidents import (
    Budget,
    per_series_per_day,
    rate_text,
    series_keys,
    with_recovery,
)
from madcheck.replay.runner import BatchSource, PassSettings, replay_pass

DEFAULT_BUDGET = "1/week"
KS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
COUNTS = (1, 2, 3, 5)
WINDOWS = (20, 50, 100)
#: (k, count) pairs left out: on calm normal data they fire on about 1% of points or more,
#: far beyond any budget, and replaying their alerts would cost most of the search's time
NOISY = frozenset({(3.0, 1), (3.0, 2), (4.0, 1)})
#: an incident is strong when its largest deviation reaches this many MADs (5.4 sigma)
STRONG_MADS = 8.0
#: candidates printed
SHOWN = 5
#: values read from the start of the input to see whether the MAD is often 0
SAMPLE_POINTS = 20_000
#: share of sampled windows with MAD 0 from which ``mad_floor`` candidates are tried
ZERO_MAD_SHARE = 0.05
#: the floors tried, as multiples of the typical non-zero MAD of the sample
FLOOR_FACTORS = (1.0, 3.0)


class SuggestError(ValueError):
    """``--suggest`` cannot run; the message says why."""


@dataclass(frozen=True)
class Candidate:
    field: str
    k: float
    window_count: int
    count: int
    mad_floor: float = 0.0

    @property
    def condition(self) -> str:
        return f"{self.field}:{self.k:g}:{self.window_count}:{self.count}"

    @property
    def argument(self) -> str:
        """The trigger arguments to paste (``--trigger-arguments`` joins them with commas)."""
        text = f"mad_thresholds={self.condition}"
        if self.mad_floor:
            text += f",mad_floor={self.mad_floor:.6g}"
        return text


@dataclass
class CandidateResult:
    candidate: Candidate
    fired: int = 0
    incidents: int = 0
    strong: int = 0
    series: set[tuple[Any, str]] = field(default_factory=set)
    #: alert id -> whether its open incident has been counted strong
    _open: dict[str, bool] = field(default_factory=dict)

    def add(self, record: AlertRecord) -> None:
        if record.state == RESOLVED:
            self._open.pop(record.alert_id, None)
            return
        if record.state != FIRING:
            return
        self.fired += 1
        counted = self._open.get(record.alert_id)
        if counted is None:
            self.incidents += 1
            self.series.add((record.tags, record.field))
            counted = False
        if not counted and strength(record) >= STRONG_MADS:
            self.strong += 1
            counted = True
        self._open[record.alert_id] = counted


def strength(record: AlertRecord) -> float:
    """How many (floored) MADs the value lies from the median; 0 against a MAD of 0."""
    half_band = (record.upper - record.lower) / 2
    if not half_band > 0 or not math.isfinite(half_band):
        return 0.0
    return abs(record.value - record.median) * record.k / half_band


def candidates(
    field_name: str, floors: Sequence[float], given: Threshold | None
) -> list[Candidate]:
    """The grid: every window x floor x k x count, plus the user's own condition. With
    floors, every candidate has one: without, the series whose MAD is 0 would fire on any change
    in every candidate (and replaying those alerts would take most of the search's time)."""
    grid = [
        Candidate(field_name, k, window, count, floor)
        for window in WINDOWS
        for floor in floors or (0.0,)
        for k in KS
        for count in COUNTS
        if (k, count) not in NOISY
    ]
    if given is not None and given.count is not None:
        own = Candidate(field_name, given.k, given.window_count, given.count, given.mad_floor)
        if own not in grid:
            grid.append(own)
    return grid


def _triggers(
    grid: Sequence[Candidate], arguments: Mapping[str, str]
) -> tuple[list[dict[str, str]], dict[tuple[int, float, int, str], CandidateResult]]:
    """One trigger per (window, floor), carrying every candidate of it; and the results by
    (trigger position, k, window_count, threshold text) as the history rows give them."""
    groups: dict[tuple[int, float], list[Candidate]] = {}
    for candidate in grid:
        groups.setdefault((candidate.window_count, candidate.mad_floor), []).append(candidate)
    triggers: list[dict[str, str]] = []
    results: dict[tuple[int, float, int, str], CandidateResult] = {}
    for position, ((_, floor), members) in enumerate(groups.items()):
        args = with_recovery(arguments)
        args["mad_thresholds"] = "@".join(member.condition for member in members)
        args["mad_floor"] = repr(floor)
        args["mad_floor_pct"] = "0"
        # nothing reads the notifications of a search: keep its outbox (and posting) minimal
        args["outbox_size"] = "1"
        triggers.append(args)
        for member in members:
            key = (position, member.k, member.window_count, str(member.count))
            results[key] = CandidateResult(member)
    return triggers, results


def sample_floors(settings: PassSettings, console: ReplayConsole, field_name: str) -> list[float]:
    """``mad_floor`` values to try, or none when the MAD is rarely 0 at the input's start."""
    source = BatchSource(settings, console, SchemaQueries(), report_bad_lines=False)
    values: dict[tuple[Any, ...], list[float]] = {}
    seen = 0
    for batch, tag_names in source.read("sampling"):
        for row in batch.rows:
            value = row.get(field_name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if not math.isfinite(value):
                continue
            key = tuple(row.get(name) for name in tag_names)
            values.setdefault(key, []).append(float(value))
            seen += 1
        if seen >= SAMPLE_POINTS:
            break
    window = WINDOWS[0]
    mads = []
    for series in values.values():
        for start in range(0, len(series) - window + 1, window):
            chunk = series[start : start + window]
            median = statistics.median(chunk)
            mads.append(statistics.median(abs(v - median) for v in chunk))
    if not mads or sum(1 for mad in mads if mad == 0) < ZERO_MAD_SHARE * len(mads):
        return []
    nonzero = [mad for mad in mads if mad > 0]
    if not nonzero:  # flat everywhere: the smallest step the data takes is the scale
        steps = [abs(b - a) for s in values.values() for a, b in itertools.pairwise(s) if b != a]
        nonzero = steps
    if not nonzero:
        return []
    base = statistics.median(nonzero)
    return [base * factor for factor in FLOOR_FACTORS]


class _SearchConsole(ReplayConsole):
    """The replay's console, without the search triggers' notes that their (minimal) outbox
    overflowed: nobody reads a search's notifications."""

    def __init__(self, console: ReplayConsole) -> None:  # shares the replay's console state
        self.__dict__.update(console.__dict__)

    def plugin_log(self, record: LogRecord) -> None:
        if "outbox full" not in record.log_text:
            super().plugin_log(record)


def rank(
    results: Sequence[CandidateResult], series: int, days: float, budget: Budget
) -> tuple[list[CandidateResult], bool]:
    """The candidates best first (see the module docstring), and whether any fits."""

    def rate(result: CandidateResult) -> float | None:
        return per_series_per_day(result.incidents, series, days)

    fitting = [r for r in results if budget.met(rate(r))]
    if not fitting:
        by_rate = sorted(results, key=lambda r: (rate(r) or 0.0, -r.strong))
        return by_rate, False
    fitting.sort(
        key=lambda r: (
            -r.strong,
            r.incidents,
            -r.candidate.k,
            -r.candidate.count,
            -r.candidate.window_count,
        )
    )
    return fitting, True


def suggest(
    stream: TextIO,
    console: ReplayConsole,
    settings: PassSettings,
    arguments: Mapping[str, str],
    field_name: str,
    budget: Budget,
    compare_given: bool = True,
) -> list[CandidateResult]:
    """Search, print the best few, and return them all ranked; ``compare_given``: the
    configuration's own count condition on the field (if any) is searched and shown too."""
    given = None
    if compare_given:
        given = next(
            (t for t in settings.config.thresholds if t.field == field_name and t.count), None
        )
    floors = sample_floors(settings, console, field_name)
    grid = candidates(field_name, floors, given)
    triggers, results = _triggers(grid, arguments)

    def tap(position: int, record: AlertRecord) -> bool:
        """Every record goes to its candidate; the pass's own counts are not used."""
        result = results.get((position, record.k, record.window_count, record.threshold))
        if result is not None:
            result.add(record)
        return False

    passed = replay_pass(settings, _SearchConsole(console), triggers, tap=tap)
    console.finish(passed.counts.bad_lines)
    series = len({key for key in series_keys(passed.stats.values()) if key[1] == field_name})
    if series == 0:
        raise SuggestError(f"no numeric values of field {field_name!r} in the input")
    days = passed.span.days
    if days <= 0:
        raise SuggestError("the input spans no data time: a budget per day cannot be judged")
    ranked, fits = rank(list(results.values()), series, days, budget)
    own = None
    if given is not None and given.count is not None:
        mine = Candidate(field_name, given.k, given.window_count, given.count, given.mad_floor)
        own = next((r for r in results.values() if r.candidate == mine), None)
    _print(stream, ranked, fits, series, days, budget, len(grid), floors, passed.seconds, own)
    return ranked


def _print(
    stream: TextIO,
    ranked: list[CandidateResult],
    fits: bool,
    series: int,
    days: float,
    budget: Budget,
    searched: int,
    floors: list[float],
    seconds: float,
    own: CandidateResult | None,
) -> None:
    strong = f"strong (>= {STRONG_MADS:g} MAD)"
    headings = ["#", "mad_thresholds", "mad_floor", "incidents", "per series per day", strong,
                "series with incidents", "alerts fired"]  # fmt: skip
    rows = [
        [
            str(position),
            result.candidate.condition,
            f"{result.candidate.mad_floor:.4g}" if result.candidate.mad_floor else "",
            f"{result.incidents:,}",
            rate_text(per_series_per_day(result.incidents, series, days)),
            f"{result.strong:,}",
            f"{len(result.series):,}",
            f"{result.fired:,}",
        ]
        for position, result in enumerate(ranked[:SHOWN], start=1)
    ]
    print(table_text("madcheck replay --suggest", headings, rows, numeric_from=3), file=stream)
    floor_note = (
        f"; the MAD is often 0, so mad_floor {', '.join(f'{f:.4g}' for f in floors)} tried"
        if floors
        else ""
    )
    print(
        shown(
            f"{plural(searched, 'candidate')} searched over {plural(series, 'series', 'series')}"
            f" and {days:.3g} days of data in {seconds:.1f} s{floor_note}; budget {budget.text}"
            f" ({budget.per_day:.3g} per series per day)"
        ),
        file=stream,
    )
    if own is not None:
        rate = rate_text(per_series_per_day(own.incidents, series, days))
        where = f"rank {ranked.index(own) + 1}" if own in ranked else "not within the budget"
        print(
            shown(
                f"yours, {own.candidate.condition}: {plural(own.incidents, 'incident')}, "
                f"{rate} per series per day, {own.strong:,} strong ({where})"
            ),
            file=stream,
        )
    if not ranked:
        return
    if not fits:
        print(
            shown(
                f"no candidate stays within {budget.text}; those above have the fewest "
                "incidents. Consider a larger budget, or look at the noisiest series "
                "(madcheck replay without --suggest)"
            ),
            file=stream,
        )
    print(f"paste: {shown(ranked[0].candidate.argument)}", file=stream)
