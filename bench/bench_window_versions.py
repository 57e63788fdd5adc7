"""Two versions of the rolling window side by side: rows/s of ``process_writes`` with each.

On a shared machine the speed of the machine itself moves by tens of percent between runs, so
a change to ``RollingMAD`` is best judged against the version before it in one process, on the
same flushes, alternating: whatever the machine does hits both. The "before" window is
``src/madcheck/detect/window.py`` as it was at a git revision (or any file with a ``RollingMAD``),
loaded as a module of its own; the "after" one is the working tree's. Everything else (plugin,
detector, engine API, data) is shared, as in ``bench_process_writes.py``, whose set-up this
reuses: 10,000 rows per flush (1,000 series up to window 100, 50 above), steady state, no alert.
With numpy, windows up to 128 values do not use ``RollingMAD`` (``detect/vectorized.py``): run
with ``MADCHECK_PURE_PYTHON=1`` to compare the window there. To compare whole versions of the
package, use ``bench_process_writes.py --before-rev``.

Rows/s is that of the median flush by CPU time; "best" is the fastest flush. Two identical
versions differ by up to about 5 % here, so smaller differences are noise.

Run from the repository root:
    .venv/bin/python bench/bench_window_versions.py --before-rev HEAD~1 --windows 20 10000
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_process_writes as setup  # noqa: E402
from madcheck.detect import detector  # noqa: E402
from madcheck.engine.api import EngineAPI  # noqa: E402

WINDOW_FILE = "src/madcheck/detect/window.py"


def load_window_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"window_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def window_at(revision: str, directory: Path) -> Path:
    """The window module as it was at ``revision``, written to a file in ``directory``."""
    text = subprocess.run(
        ["git", "show", f"{revision}:{WINDOW_FILE}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = directory / "window_before.py"
    path.write_text(text)
    return path


def steady_engine(window: int, window_class: type) -> tuple[EngineAPI, dict[str, str]]:
    """An engine whose 1,000 series have full windows of ``window_class``."""
    original = detector.RollingMAD
    detector.RollingMAD = window_class  # windows are made when a series is first seen
    series = setup.series_for(window)
    steps = setup.ROWS_PER_FLUSH // series
    try:
        rng = random.Random(42)
        engine = setup.make_engine(setup.TABLES)
        args = setup.madcheck_args(window)
        for step in range(0, window, steps):
            setup.call(engine, setup.flush(rng, series, step, steps), args)
    finally:
        detector.RollingMAD = original
    setup.check_quiet(engine)
    return engine, args


def compare(window: int, before: type, flushes: int) -> str:
    versions = {
        "before": steady_engine(window, before),
        "after": steady_engine(window, detector.RollingMAD),
    }
    rng = random.Random(window)
    series = setup.series_for(window)
    steps = setup.ROWS_PER_FLUSH // series
    first = -(-window // steps) * steps
    timed = [setup.flush(rng, series, first + i * steps, steps) for i in range(flushes)]
    seconds: dict[str, list[float]] = {name: [] for name in versions}
    for batches in timed:
        for name, (engine, args) in versions.items():
            started = time.process_time()
            setup.call(engine, batches, args)
            seconds[name].append(time.process_time() - started)
    for engine, _ in versions.values():
        setup.check_quiet(engine)
    rows = setup.ROWS_PER_FLUSH
    cells = [
        f"{rows / median(times):,.0f} (best {rows / min(times):,.0f})" for times in seconds.values()
    ]
    change = median(seconds["before"]) / median(seconds["after"]) - 1
    return f"| {window:,} | {cells[0]} | {cells[1]} | {change:+.1%} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--before-rev", help="git revision whose window.py is 'before'")
    source.add_argument("--before-file", type=Path, help="a file defining RollingMAD")
    parser.add_argument("--windows", type=int, nargs="+", default=[20, 10_000])
    parser.add_argument("--flushes", type=int, default=24, help="timed flushes per version")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = options.before_file or window_at(options.before_rev, Path(directory))
        before = load_window_module(path).RollingMAD
    print(f"before: {options.before_rev or path}; after: the working tree's {WINDOW_FILE}")
    print(f"{options.flushes} flushes of {setup.ROWS_PER_FLUSH:,} rows each, alternating\n")
    print("| window | before rows/s | after rows/s | change |")
    print("|---:|---:|---:|---:|")
    for window in options.windows:
        print(compare(window, before, options.flushes), flush=True)


if __name__ == "__main__":
    main()
