"""``--sweep k=2,2.5,3 window_count=10,20,50``: every combination replayed side by side.

Each combination is its own trigger (own cache, own detector state) fed the same batches in one
pass over the input, so its counts are those of an individual replay with that configuration,
while the file is read and parsed once. ``k``, ``window_count`` and ``threshold`` apply to every
condition of ``mad_thresholds``; ``state_change_count`` to the trigger.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TextIO

from madcheck.config.thresholds import Threshold, ThresholdError, threshold_from_parts
from madcheck.replay.console import shown, table_text
from madcheck.replay.incidents import (
    Budget,
    IncidentCount,
    per_series_per_day,
    rate_text,
    series_keys,
)
from madcheck.replay.runner import PassResult

PARAMETERS = ("k", "window_count", "threshold", "state_change_count")
MAX_COMBINATIONS = 200

Combination = dict[str, str]


class SweepError(ValueError):
    """The sweep specification cannot be used; the message says how to write it."""


def parse_sweep(tokens: Sequence[str]) -> list[Combination]:
    """``["k=2,3", "window_count=10,20"]`` -> every combination, first parameter slowest."""
    axes: list[tuple[str, list[str]]] = []
    for token in tokens:
        name, sep, values = token.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in PARAMETERS:
            raise SweepError(
                f"--sweep {token!r}: expected NAME=V1,V2,... with NAME one of "
                f"{', '.join(PARAMETERS)}"
            )
        if any(axis == name for axis, _ in axes):
            raise SweepError(f"--sweep names {name} twice")
        items = [value.strip() for value in values.split(",") if value.strip()]
        if not items:
            raise SweepError(f"--sweep {name}: no values")
        axes.append((name, items))
    combinations = [
        dict(zip([name for name, _ in axes], values, strict=True))
        for values in itertools.product(*(items for _, items in axes))
    ]
    if len(combinations) > MAX_COMBINATIONS:
        raise SweepError(
            f"--sweep has {len(combinations)} combinations; at most {MAX_COMBINATIONS}"
        )
    return combinations


def _varied(threshold: Threshold, combination: Combination) -> Threshold:
    limit = combination.get("threshold", threshold.threshold_text)
    parts = [
        threshold.field,
        combination.get("k", repr(threshold.k)),
        combination.get("window_count", str(threshold.window_count)),
        limit,
    ]
    try:
        return threshold_from_parts(parts)
    except ThresholdError as error:
        raise SweepError(f"--sweep {combination}: {error}") from None


def sweep_arguments(
    arguments: dict[str, str], thresholds: Sequence[Threshold], combinations: list[Combination]
) -> list[tuple[Combination, dict[str, str]]]:
    """The trigger arguments of each combination."""
    variants = []
    for combination in combinations:
        varied = [_varied(threshold, combination) for threshold in thresholds]
        args = dict(arguments)
        args["mad_thresholds"] = "@".join(
            f"{t.field}:{t.k!r}:{t.window_count}:{t.threshold_text}" for t in varied
        )
        if "state_change_count" in combination:
            args["state_change_count"] = combination["state_change_count"]
        variants.append((combination, args))
    return variants


def print_sweep(
    stream: TextIO,
    combinations: list[Combination],
    result: PassResult,
    incidents: Sequence[IncidentCount],
    budget: Budget | None = None,
) -> None:
    """One line per combination with its alerts and incidents; with a ``budget``, sorted by
    incidents per series per day, those within it marked."""
    series = len(series_keys(result.stats.values()))
    days = result.span.days
    names = list(combinations[0]) if combinations else []
    headings = [*names, "alerts fired", "suppressed", "incidents", "per series per day",
                "series with incidents"]  # fmt: skip
    if budget is not None:
        headings.append(f"within {budget.text}")
    entries = []
    for combination, totals, counted in zip(combinations, result.totals, incidents, strict=False):
        rate = per_series_per_day(counted.total, series, days)
        row = [
            *(combination[name] for name in names),
            f"{totals.fired:,}",
            f"{totals.suppressed:,}",
            f"{counted.total:,}",
            rate_text(rate),
            f"{counted.series_with_incidents:,}",
        ]
        if budget is not None:
            row.append("yes" if budget.met(rate) else "")
        entries.append((rate, row))
    if budget is not None:  # fewest incidents first; a combination without a rate last
        entries.sort(key=lambda entry: (entry[0] is None, entry[0] or 0.0))
    rows = [row for _, row in entries]
    print(table_text("madcheck replay --sweep", headings, rows, numeric_from=0), file=stream)
    points = result.counts.points
    text = (
        f"{points:,} points of {series:,} series, {days:.3g} days of data, replayed per "
        f"combination in {result.seconds:.1f} s"
    )
    if budget is not None:
        met = sum(1 for rate, _ in entries if budget.met(rate))
        text += f"; {met:,} of {len(entries):,} within {budget.text} ({budget.per_day:.3g} per day)"
    print(shown(text), file=stream)
