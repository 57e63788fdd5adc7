"""Rows per second of ``process_writes``, madcheck beside a straightforward plugin, and memory.

Both plugins run as the engine runs them: the plugin file is executed in fresh globals on every
call (``load_entry_point``), against the test engine API with a schema-answering query handler.
Steady state: every window is full before the clock starts. One numeric field, 1,000 series
(tag ``host``), 10,000 rows per flush in time order (each timestamp carries every series).
Values are Gaussian and ``k`` is 3, so about 4 % of points are outliers, but the count threshold
is out of reach: no rule fires, no alert is sent (checked), the notifier port is never used.

Rows/s is that of the median timed flush, by this process's CPU time (steady on a shared
machine) and by wall-clock time. The naive plugin at large windows costs milliseconds per row, so
it is timed on fewer rows, in flushes of one timestamp (1,000 rows); the table says how many.

Run from the repository root:  .venv/bin/python bench/bench_process_writes.py
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support: the schema-answering engine the tests use

from tests.support import MAD_PLUGIN, free_port, make_engine  # noqa: E402

from madcheck.engine.api import EngineAPI  # noqa: E402
from madcheck.engine.loader import load_entry_point  # noqa: E402

NAIVE_PLUGIN = Path(__file__).with_name("naive_plugin.py")
WINDOWS = (5, 20, 100, 1_000, 10_000)
SERIES = 1_000
ROWS_PER_FLUSH = 10_000
STEPS_PER_FLUSH = ROWS_PER_FLUSH // SERIES
TABLES = {"cpu": {"tags": ["host"], "fields": ["usage"]}}
NEVER = 1_000_000  # count threshold no run of outliers reaches
START_S = 1_700_000_000

Batches = list[dict[str, Any]]


@dataclass(frozen=True)
class Timing:
    """Per flush, seconds of this process's CPU time (what the plugin costs, even on a busy
    machine) and of wall-clock time (what it cost on this machine at the time)."""

    cpu: list[float]
    wall: list[float]

    def rates(self, rows_per_flush: int) -> tuple[float, float]:
        """Rows per second of the median flush, by CPU and by wall-clock time."""
        return rows_per_flush / median(self.cpu), rows_per_flush / median(self.wall)


def flush(rng: random.Random, first_step: int, steps: int = STEPS_PER_FLUSH) -> Batches:
    """One WAL flush: ``steps`` timestamps, each with a row for every series."""
    rows = [
        {"host": f"host{s:04d}", "usage": rng.gauss(50.0, 5.0), "time": (START_S + t) * 10**9}
        for t in range(first_step, first_step + steps)
        for s in range(SERIES)
    ]
    return [{"table_name": "cpu", "rows": rows}]


def madcheck_args(window: int) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": f"usage:3:{window}:{NEVER}",
        "senders": "http",
        "http_webhook_url": "http://127.0.0.1/never",
        "port_override": str(free_port()),
        "influxdb3_auth_token": "bench-token",
    }


def naive_args(window: int) -> dict[str, str]:
    return {"measurement": "cpu", "mad_thresholds": f"usage:3:{window}:{NEVER}"}


def call(plugin: Path, engine: EngineAPI, batches: Batches, args: dict[str, str]) -> None:
    """One engine-style call: the plugin file is executed afresh, then its entry point runs."""
    load_entry_point(plugin, "process_writes")(engine, batches, args)


def check_quiet(engine: EngineAPI) -> None:
    """The benchmark is about the detection path: nothing may have fired or failed."""
    fired = ("alert sent", "alert delivery", "alert suppressed", "alert:")
    noisy = [t for t in engine.log_texts() if any(word in t for word in fired)]
    noisy += engine.log_texts("ERROR")
    if noisy or engine.writes:
        raise SystemExit(f"benchmark data fired a rule or failed: {noisy[:3]} {engine.writes[:3]}")
    engine.take_logs()


def time_flushes(
    plugin: Path, engine: EngineAPI, flushes: list[Batches], args: dict[str, str]
) -> Timing:
    gc.collect()
    timing = Timing([], [])
    for batches in flushes:
        cpu, wall = time.process_time(), time.perf_counter()
        call(plugin, engine, batches, args)
        timing.cpu.append(time.process_time() - cpu)
        timing.wall.append(time.perf_counter() - wall)
    return timing


def bench_madcheck(window: int, flushes: int, rng: random.Random) -> tuple[float, float]:
    engine = make_engine(TABLES)
    args = madcheck_args(window)
    fill = flush(rng, 0)
    for _ in range(-(-window // STEPS_PER_FLUSH)):
        call(MAD_PLUGIN, engine, fill, args)
        for row in fill[0]["rows"]:  # fresh values, so windows hold no copies of one flush
            row["usage"] = rng.gauss(50.0, 5.0)
    check_quiet(engine)
    timed = [flush(rng, window + i * STEPS_PER_FLUSH) for i in range(flushes)]
    timing = time_flushes(MAD_PLUGIN, engine, timed, args)
    check_quiet(engine)
    return timing.rates(ROWS_PER_FLUSH)


def bench_naive(window: int, rows: int, rng: random.Random) -> tuple[float, float]:
    engine = make_engine(TABLES)
    key_of: Callable[..., str] = load_entry_point(NAIVE_PLUGIN, "window_key")
    for s in range(SERIES):
        key = key_of("cpu", f"host=host{s:04d}", "usage", window)
        engine.cache.put(key, [rng.gauss(50.0, 5.0) for _ in range(window)])
    steps = max(1, rows // SERIES)
    timed = [flush(rng, window + step, 1) for step in range(steps)]
    timing = time_flushes(NAIVE_PLUGIN, engine, timed, naive_args(window))
    check_quiet(engine)
    return timing.rates(SERIES)


def bytes_per_value(plugin: Path, args: dict[str, str], window: int) -> float:
    """Everything the trigger retains once every window is full, per retained value.

    Rows (and their tag strings) are made while tracing, so the series keys kept from them count.
    """
    rng = random.Random(7)
    call(plugin, make_engine(TABLES), flush(rng, 0, 1), args)  # imports happen outside tracing
    engine = make_engine(TABLES)
    gc.collect()
    tracemalloc.start()
    for step in range(0, window, STEPS_PER_FLUSH):
        call(plugin, engine, flush(rng, step), args)
    engine.take_logs()
    gc.collect()
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return retained / (SERIES * window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--flushes", type=int, default=8, help="timed flushes for madcheck")
    parser.add_argument(
        "--naive-rows", type=int, default=10_000, help="rows timed for the naive plugin"
    )
    parser.add_argument(
        "--naive-rows-large", type=int, default=1_000, help="the same, at windows over 1,000"
    )
    options = parser.parse_args()
    rng = random.Random(42)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{SERIES} series, {ROWS_PER_FLUSH} rows per flush, plugin files run engine-style\n"
    )
    print(
        "| window | madcheck rows/s (CPU) | naive rows/s (CPU) | speed-up "
        "| madcheck rows/s (wall) | naive rows/s (wall) | rows timed: madcheck, naive |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for window in options.windows:
        fast_cpu, fast_wall = bench_madcheck(window, options.flushes, rng)
        rows = options.naive_rows if window <= 1_000 else options.naive_rows_large
        naive_cpu, naive_wall = bench_naive(window, rows, rng)
        print(
            f"| {window:,} | {fast_cpu:,.0f} | {naive_cpu:,.0f} | {fast_cpu / naive_cpu:,.0f}x "
            f"| {fast_wall:,.0f} | {naive_wall:,.0f} "
            f"| {options.flushes * ROWS_PER_FLUSH:,}, {rows:,} |",
            flush=True,
        )
    window = 100
    print(
        f"\nbytes per retained value at window {window} (tracemalloc, whole trigger state): "
        f"madcheck {bytes_per_value(MAD_PLUGIN, madcheck_args(window), window):.1f}, "
        f"naive {bytes_per_value(NAIVE_PLUGIN, naive_args(window), window):.1f}"
    )


if __name__ == "__main__":
    main()
