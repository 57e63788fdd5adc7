"""Recordings with anomalies injected at known places, for ``--suggest`` (tests and
bench/bench_suggest.py).

Series ``h000``... report ``temp`` (normal noise, sigma 1, around 50) and ``load`` every
``step_s`` seconds. The first ``anomalous`` series get ``per_series`` anomalies each, of four
kinds in turn, spaced apart at random places after a warm-up; the others are calm, and the
last ``quantized`` of those report whole numbers (50 nearly always, so their MAD is mostly 0).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

START_S = 1_700_000_000
WARM_UP = 200
#: kind -> (points, offset in sigmas)
KINDS = {"spike": (1, 15.0), "burst": (4, 10.0), "shift": (40, 7.0), "dip": (3, -12.0)}


@dataclass(frozen=True)
class Injected:
    host: str
    kind: str
    first: int
    last: int

    def start_s(self, step_s: int) -> int:
        return START_S + self.first * step_s

    def end_s(self, step_s: int) -> int:
        return START_S + self.last * step_s


def host(index: int) -> str:
    return f"h{index:03d}"


def generate(
    path: Path,
    series: int,
    steps: int,
    anomalous: int,
    per_series: int = 2,
    quantized: int = 0,
    step_s: int = 60,
    seed: int = 3,
) -> list[Injected]:
    """Write the line protocol; return the injected anomalies."""
    rng = random.Random(seed)
    injected: list[Injected] = []
    offsets: list[dict[int, float]] = []
    kinds = list(KINDS)
    for index in range(series):
        placed: dict[int, float] = {}
        if index < anomalous:
            slots = sorted(rng.sample(range(WARM_UP // 100, steps // 100 - 1), per_series))
            for number, slot in enumerate(slots):
                kind = kinds[(index * per_series + number) % len(kinds)]
                length, sigmas = KINDS[kind]
                first = slot * 100 + rng.randrange(0, 50)
                for step in range(first, first + length):
                    placed[step] = sigmas
                injected.append(Injected(host(index), kind, first, first + length - 1))
        offsets.append(placed)
    flat = range(series - quantized, series)
    with path.open("w") as handle:
        for step in range(steps):
            time_s = START_S + step * step_s
            for index in range(series):
                value = 50.0 + rng.gauss(0.0, 1.0) + offsets[index].get(step, 0.0)
                text = f"{round(50 + rng.gauss(0, 0.3))}" if index in flat else f"{value:.3f}"
                handle.write(
                    f"cpu,host={host(index)} temp={text},load={rng.random():.3f} {time_s}\n"
                )
    return injected


def caught(
    injected: list[Injected], firings: list[tuple[str, int]], step_s: int, slack: int = 10
) -> list[Injected]:
    """The anomalies with a firing (host, time in s) of their series during them (``slack``
    steps after their last point allowed: a count rule fires on a later outlier)."""
    by_host: dict[str, list[int]] = {}
    for name, time_s in firings:
        by_host.setdefault(name, []).append(time_s)
    return [
        anomaly
        for anomaly in injected
        if any(
            anomaly.start_s(step_s) <= t <= anomaly.end_s(step_s) + slack * step_s
            for t in by_host.get(anomaly.host, ())
        )
    ]
