"""Time ``madcheck replay`` on a generated recording.

    python bench/bench_replay.py --points 1000000 --series 100

Writes N points of line protocol (``series`` hosts reporting every 10 s, Gaussian noise with
rare spikes) to a temporary file, replays it with one count threshold, and prints the time taken,
the rate and what 10 million points would take at that rate. Nothing here is asserted: speed
depends on the machine, so it is measured here and stated in docs/replay.md, never tested.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from pathlib import Path

from madcheck.cli import main


def generate(path: Path, points: int, series: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    start_s = 1_700_000_000
    with path.open("w") as handle:
        for index in range(points):
            step, host = divmod(index, series)
            value = rng.gauss(50.0, 2.0)
            if rng.random() < 0.002:
                value += 40.0
            handle.write(f"cpu,host=h{host:05d} temp={value:.3f} {start_s + step * 10}\n")


def run(path: Path, extra: list[str]) -> float:
    argv = ["replay", str(path), "--measurement", "cpu", "--mad-thresholds", "temp:3:30:3"]
    argv += ["--no-progress", *extra]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    elapsed = time.perf_counter() - started
    if code != 0:
        sys.exit(f"replay failed with exit status {code}")
    return elapsed


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--flush-interval", default="1s")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.lp"
        started = time.perf_counter()
        generate(path, options.points, options.series)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {options.points:,} points ({size_mb:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        elapsed = run(path, ["--flush-interval", options.flush_interval])
    rate = options.points / elapsed
    print(f"replayed {options.points:,} points of {options.series} series in {elapsed:.1f} s: "
          f"{rate:,.0f} points/s")  # fmt: skip
    print(f"10,000,000 points at this rate: {10_000_000 / rate / 60:.1f} min (extrapolated)")


if __name__ == "__main__":
    cli()
