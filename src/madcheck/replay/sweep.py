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


def print_sweep(stream: TextIO, combinations: list[Combination], result: PassResult) -> None:
    names = list(combinations[0]) if combinations else []
    headings = [*names, "alerts fired", "suppressed", "series alerting"]
    rows = [
        [
            *(combination[name] for name in names),
            f"{totals.fired:,}",
            f"{totals.suppressed:,}",
            f"{len(totals.alerting):,}",
        ]
        for combination, totals in zip(combinations, result.totals, strict=True)
    ]
    print(table_text("madcheck replay --sweep", headings, rows, numeric_from=0), file=stream)
    points = result.counts.points
    print(
        shown(f"{points:,} points replayed per combination in {result.seconds:.1f} s"),
        file=stream,
    )
