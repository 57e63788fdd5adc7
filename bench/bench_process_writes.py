"""Rows per second of ``process_writes``: the working tree beside an earlier version, in one run.

Both versions run as the engine runs the plugin: the plugin file is executed in fresh globals on
every call (``load_entry_point``), against the test engine API with a schema-answering query
handler. The "before" version is the ``madcheck`` package as it was at a git revision (default
``main``), exported to a temporary directory and imported as a second copy of the package: each
call runs with that version's modules in ``sys.modules``. Everything else (engine API, plugin
file, data) is shared.

Steady state: every window is full before the clock starts. One numeric field, 10,000 rows per
flush in time order (each timestamp carries every series): 1,000 series (tag ``host``) at windows
up to 100, 50 at larger ones. Values are Gaussian and ``k`` is 3, so about 4 % of points are
outliers, but the count threshold is out of reach: no rule fires, no alert is sent (checked).
Flushes alternate between the versions (which goes first alternates too), so whatever the shared
machine does hits both; rows/s is that of the median flush by this process's CPU time.

Also measured, both versions alternating: the plugin time of a call with one row (steady state,
median CPU time per call), of which ``Detector.process`` takes the "detector" column (timed on
calls of its own, interleaved with the others; the rest is the plugin's glue), and the bytes the
trigger retains per window value (tracemalloc, everything the trigger keeps, series keys
included).

Run from the repository root:  .venv/bin/python bench/bench_process_writes.py
(``MADCHECK_PURE_PYTHON=1`` in the environment measures the working tree without numpy;
``--flushes 0`` times one-row calls only; ``--plugin package`` runs the ``madcheck`` package
directory as InfluxDB 3.6 and later can, imported once, instead of the single file executed
afresh on every call; ``--profile-one-row N`` prints where N one-row calls of the working tree
spend their time.)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import os
import platform
import pstats
import random
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from statistics import median
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support: the schema-answering engine the tests use

from tests.support import MAD_PLUGIN, free_port, make_engine  # noqa: E402

from madcheck.engine.api import EngineAPI  # noqa: E402
from madcheck.engine.loader import load_entry_point  # noqa: E402
from madcheck.plugin.delivery import STATE_KEY  # noqa: E402

WINDOWS = (5, 20, 100, 1_000, 10_000)
ROWS_PER_FLUSH = 10_000
TABLES = {"cpu": {"tags": ["host"], "fields": ["usage"]}}
NEVER = 1_000_000  # count threshold no run of outliers reaches
START_S = 1_700_000_000

Batches = list[dict[str, Any]]


def series_for(window: int) -> int:
    return 1_000 if window <= 100 else 50


@dataclass
class Version:
    """One copy of the ``madcheck`` package: its modules, and the source directory they came
    from (on ``sys.path`` while it runs, for anything imported late)."""

    name: str
    source: Path
    modules: dict[str, ModuleType] = field(default_factory=dict)
    #: run as a directory plugin (the ``madcheck`` package, InfluxDB 3.6 and later) rather than
    #: as the single-file plugin ``plugins/mad_check_plugin.py``
    package: bool = False

    @property
    def plugin(self) -> Path:
        """What the engine loads for each call."""
        return self.source / "madcheck" if self.package else MAD_PLUGIN

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = _take_modules()
        sys.modules.update(self.modules)
        sys.path.insert(0, str(self.source))
        try:
            yield
        finally:
            sys.path.remove(str(self.source))
            self.modules = _take_modules()
            sys.modules.update(saved)


def _take_modules() -> dict[str, ModuleType]:
    """Remove every ``madcheck`` module from ``sys.modules`` and return them."""
    names = [n for n in sys.modules if n == "madcheck" or n.startswith("madcheck.")]
    return {name: sys.modules.pop(name) for name in names}


def load_version(name: str, source: Path) -> Version:
    version = Version(name, source)
    with version.active():
        importlib.import_module("madcheck.plugin.writes")
    return version


def export_revision(revision: str, directory: Path) -> Path:
    """``src/madcheck`` as it was at ``revision``, written under ``directory``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src/madcheck"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory / "src"


def flush(rng: random.Random, series: int, first_step: int, steps: int) -> Batches:
    """One WAL flush: ``steps`` timestamps, each with a row for every series."""
    rows = [
        {"host": f"host{s:04d}", "usage": rng.gauss(50.0, 5.0), "time": (START_S + t) * 10**9}
        for t in range(first_step, first_step + steps)
        for s in range(series)
    ]
    return [{"table_name": "cpu", "rows": rows}]


def one_row(rng: random.Random, host: int, step: int) -> Batches:
    row = {
        "host": f"host{host:04d}",
        "usage": rng.gauss(50.0, 5.0),
        "time": (START_S + step) * 10**9,
    }
    return [{"table_name": "cpu", "rows": [row]}]


def madcheck_args(window: int) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": f"usage:3:{window}:{NEVER}",
        "senders": "http",
        "http_webhook_url": "http://127.0.0.1/never",
        "port_override": str(free_port()),
        "influxdb3_auth_token": "bench-token",
    }


def call(version: Version, engine: EngineAPI, batches: Batches, args: dict[str, str]) -> None:
    """One engine-style call: the plugin file is executed afresh (a directory plugin is imported
    once), then its entry point runs. Call it with ``version`` active."""
    load_entry_point(version.plugin, "process_writes")(engine, batches, args)


def check_quiet(engine: EngineAPI) -> None:
    """The benchmark is about the detection path: nothing may have fired or failed."""
    fired = ("alert sent", "alert delivery", "alert suppressed", "alert:")
    noisy = [t for t in engine.log_texts() if any(word in t for word in fired)]
    noisy += engine.log_texts("ERROR")
    if noisy or engine.writes:
        raise SystemExit(f"benchmark data fired a rule or failed: {noisy[:3]} {engine.writes[:3]}")
    engine.take_logs()


@dataclass
class Trigger:
    """One version's trigger, windows full: its engine and arguments."""

    version: Version
    engine: EngineAPI
    args: dict[str, str]
    step: int

    def run(self, batches: Batches) -> float:
        """CPU seconds of one call, the plugin's part: the engine reading and executing the
        plugin file happens before the clock starts."""
        with self.version.active():
            entry_point = load_entry_point(self.version.plugin, "process_writes")
            started = time.process_time()
            entry_point(self.engine, batches, self.args)
            return time.process_time() - started


def steady(version: Version, window: int) -> Trigger:
    series = series_for(window)
    steps = ROWS_PER_FLUSH // series
    rng = random.Random(7)
    engine = make_engine(TABLES)
    args = madcheck_args(window)
    step = 0
    with version.active():
        while step < window:
            call(version, engine, flush(rng, series, step, steps), args)
            step += steps
    check_quiet(engine)
    return Trigger(version, engine, args, step)


def _turns(count: int, round_number: int) -> list[int]:
    """Who runs first alternates from round to round: the second of two calls on the same data
    finds it in the CPU cache."""
    order = list(range(count))
    return order if round_number % 2 == 0 else order[::-1]


def compare_flushes(triggers: list[Trigger], window: int, flushes: int) -> list[float]:
    """Median CPU seconds per flush of each trigger, on the same flushes, alternating."""
    series = series_for(window)
    steps = ROWS_PER_FLUSH // series
    rng = random.Random(window)
    first = max(t.step for t in triggers)
    seconds: list[list[float]] = [[] for _ in triggers]
    gc.collect()
    for i in range(flushes):
        batches = flush(rng, series, first + i * steps, steps)
        for at in _turns(len(triggers), i):
            seconds[at].append(triggers[at].run(batches))
    for trigger in triggers:
        check_quiet(trigger.engine)
        trigger.step = first + flushes * steps
    return [median(times) for times in seconds]


def compare_one_row(
    triggers: list[Trigger], window: int, calls: int
) -> tuple[list[float], list[float]]:
    """Median CPU seconds of a call with one row (rotating over the series), and of the
    ``Detector.process`` inside such a call, per trigger, alternating.

    The detector's share is timed on calls of its own (its timer would inflate the whole
    call's figure), interleaved with the plain calls so that the machine's load hits both
    alike; the rest of a one-row call is the plugin's glue."""
    series = series_for(window)
    rng = random.Random(window + 1)
    first = max(t.step for t in triggers)
    whole: list[list[float]] = [[] for _ in triggers]
    detector: list[list[float]] = [[] for _ in triggers]
    for i in range(calls):
        plain = one_row(rng, i % series, first + 2 * (i // series))
        timed = one_row(rng, i % series, first + 2 * (i // series) + 1)
        for at in _turns(len(triggers), i):
            whole[at].append(triggers[at].run(plain))
        for at in _turns(len(triggers), i + 1):
            with timed_detector(triggers[at], detector[at]):
                triggers[at].run(timed)
    for trigger in triggers:
        check_quiet(trigger.engine)
        trigger.step = first + 2 * (calls // series + 1)
    return [median(times) for times in whole], [median(times) for times in detector]


@contextmanager
def timed_detector(trigger: Trigger, seconds: list[float]) -> Iterator[None]:
    """Append the CPU time of each ``Detector.process`` call of ``trigger`` to ``seconds``."""
    detector = trigger.engine.cache.get(STATE_KEY).detector
    process = detector.process

    def timed(rows: Any, tag_names: Any) -> Any:
        started = time.process_time()
        try:
            return process(rows, tag_names)
        finally:
            seconds.append(time.process_time() - started)

    detector.process = timed
    try:
        yield
    finally:
        del detector.process


def profile_one_row(version: Version, window: int, calls: int, shown: int) -> None:
    """cProfile of ``calls`` steady-state one-row calls of ``version``: where the time goes."""
    trigger = steady(version, window)
    series = series_for(window)
    rng = random.Random(window + 3)
    batches = [one_row(rng, i % series, trigger.step + i // series) for i in range(calls)]
    profiler = cProfile.Profile()
    with version.active():
        for batch in batches:
            entry_point = load_entry_point(version.plugin, "process_writes")
            profiler.enable()
            entry_point(trigger.engine, batch, trigger.args)
            profiler.disable()
    check_quiet(trigger.engine)
    print(f"\ncProfile of {calls:,} one-row calls at window {window:,} ({version.name}):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(shown)


def bytes_per_value(version: Version, window: int) -> float:
    """Everything the trigger retains once every window is full, per retained value.

    Rows (and their tag strings) are made while tracing, so the series keys kept from them count.
    """
    series = series_for(window)
    steps = ROWS_PER_FLUSH // series
    rng = random.Random(7)
    args = madcheck_args(window)
    with version.active():
        call(version, make_engine(TABLES), flush(rng, series, 0, 1), args)  # imports untraced
        engine = make_engine(TABLES)
        gc.collect()
        tracemalloc.start()
        for step in range(0, window, steps):
            call(version, engine, flush(rng, series, step, steps), args)
        engine.take_logs()
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return retained / (series * window)


def path_of(version: Version) -> str:
    with version.active():
        try:
            vectorized = importlib.import_module("madcheck.detect.vectorized")
        except ImportError:
            return "pure Python"
        return "numpy" if vectorized.available() else "pure Python"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-rev", default="main", help="git revision to compare with")
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument(
        "--flushes", type=int, default=12, help="timed flushes per version (0: one-row calls only)"
    )
    parser.add_argument("--one-row-calls", type=int, default=400, help="one-row calls timed")
    parser.add_argument("--memory-windows", type=int, nargs="*", default=[100, 1_000])
    parser.add_argument(
        "--plugin",
        choices=("file", "package"),
        default="file",
        help="run plugins/mad_check_plugin.py (executed afresh each call) or the madcheck "
        "package directory (imported once), as InfluxDB 3.6 and later can",
    )
    parser.add_argument(
        "--profile-one-row",
        type=int,
        metavar="CALLS",
        default=0,
        help="also profile this many one-row calls of the working tree at each window (cProfile)",
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        before = load_version(
            options.before_rev, export_revision(options.before_rev, Path(directory))
        )
        after = load_version("working tree", REPO / "src")
        before.package = after.package = options.plugin == "package"
        print(
            f"Python {platform.python_version()} on {platform.machine()}; "
            f"before: {options.before_rev} ({path_of(before)}); "
            f"after: the working tree ({path_of(after)}"
            f"{', MADCHECK_PURE_PYTHON=1' if os.environ.get('MADCHECK_PURE_PYTHON') else ''}); "
            f"plugin: {'the package directory' if after.package else MAD_PLUGIN.name}; "
            f"{ROWS_PER_FLUSH:,} rows per flush, {options.flushes} flushes each, alternating; "
            f"CPU time, medians\n"
        )
        print(
            "| window | series | before rows/s | after rows/s | ratio "
            "| one-row call before | one-row call after | ratio "
            "| of which detector before | after |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for window in options.windows:
            triggers = [steady(before, window), steady(after, window)]
            if options.flushes:
                flush_s = compare_flushes(triggers, window, options.flushes)
                rates = [ROWS_PER_FLUSH / s for s in flush_s]
                flushes = f"{rates[0]:,.0f} | {rates[1]:,.0f} | {rates[1] / rates[0]:.2f}"
            else:
                flushes = "- | - | -"
            row_s, detector_s = compare_one_row(triggers, window, options.one_row_calls)
            print(
                f"| {window:,} | {series_for(window):,} | {flushes} "
                f"| {row_s[0] * 1e6:.1f} µs | {row_s[1] * 1e6:.1f} µs "
                f"| {row_s[1] / row_s[0]:.2f} "
                f"| {detector_s[0] * 1e6:.1f} µs | {detector_s[1] * 1e6:.1f} µs |",
                flush=True,
            )
            del triggers
            gc.collect()
            if options.profile_one_row:
                profile_one_row(after, window, options.profile_one_row, 25)
        for window in options.memory_windows:
            print(
                f"\nbytes per retained value at window {window:,} ({series_for(window):,} series, "
                f"tracemalloc, whole trigger state): before {bytes_per_value(before, window):.1f}, "
                f"after {bytes_per_value(after, window):.1f}",
                end="",
            )
        print()


if __name__ == "__main__":
    main()
