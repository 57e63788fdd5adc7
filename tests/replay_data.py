"""Generated recordings with anomalies injected at known places, for the replay tests.

Every series alternates 10.0 and 10.2 (median 10.1, MAD 0.1 over any window), so with k=3 and a
window of 20 no baseline value is ever an outlier and every injected value is: which alerts a
count threshold of 3 fires can be worked out by hand (see ``EXPECTED``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

START_S = 1_700_000_000
STEP_S = 10
POINTS = 200
THRESHOLDS = "temp:3:20:3"

#: index -> injected value, per host.
INJECTED: dict[str, dict[int, float]] = {
    # a run of 3 (alert at 62), a run of 2 (none), a run of 6 (alerts at 142 and 145)
    "a": {60: 50.0, 61: 50.0, 62: 50.0, 100: 50.0, 101: 50.0, **{i: 50.0 for i in range(140, 146)}},
    # a dip of 3 (alert at 152)
    "b": {150: -30.0, 151: -30.0, 152: -30.0},
    # quiet
    "c": {},
}
#: (host, index) of every alert the thresholds above fire, in time order.
EXPECTED = [("a", 62), ("a", 142), ("a", 145), ("b", 152)]


def value(host: str, index: int) -> float:
    return INJECTED[host].get(index, 10.0 if index % 2 == 0 else 10.2)


def time_s(index: int) -> int:
    return START_S + index * STEP_S


def rfc3339(index: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time_s(index), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lp_lines(scale: int = 1) -> list[str]:
    """Line protocol, interleaving hosts as a collector would; ``scale`` 1000 gives ms."""
    return [
        f"cpu,host={host} temp={value(host, i)},load=0.5 {time_s(i) * scale}"
        for i in range(POINTS)
        for host in INJECTED
    ]


def write_lp(path: Path, lines: list[str] | None = None) -> Path:
    path.write_text("\n".join(lines if lines is not None else lp_lines()) + "\n")
    return path


def write_csv(path: Path) -> Path:
    rows = ["time,host,temp,load"]
    rows += [
        f"{rfc3339(i)},{host},{value(host, i)},0.5" for i in range(POINTS) for host in INJECTED
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def window_stats(host: str, index: int, window: int = 20) -> tuple[float, float]:
    """Median and MAD of the ``window`` values up to ``index``, by the definition."""
    values = [value(host, i) for i in range(index - window + 1, index + 1)]
    median = statistics.median(values)
    return median, statistics.median(abs(v - median) for v in values)
