"""Time of the missing-data query (one per scheduled call) on the local engine's SQLite storage and
on DataFusion (InfluxDB 3's SQL engine, tables typed as it types them), side by side, same data.

PYTHONPATH=. python bench/bench_missing_query.py [--rows 200000] [--series 1000] [--repeat 3]

The query reads the tag and time columns of the last ``missing_lookback``; here all rows lie
inside it, so this is the full cost of a call's query on a table of that size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.datafusion_engine import DataFusionQueries

from madcheck.engine.storage import Storage
from madcheck.plugin.missing import last_seen_query

START_S = 1_700_000_000
SINCE = {"since": "2023-11-14T00:00:00Z"}


def _timed(run: Callable[[], list[dict[str, Any]]], repeat: int) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        found = len(run())
        times.append(time.perf_counter() - began)
    return statistics.median(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    points = [
        (f"cpu,host=h{i % options.series} temp={i % 17}", START_S + i) for i in range(options.rows)
    ]
    lines = [f"{point} {seconds}" for point, seconds in points]
    sql = last_seen_query("cpu", ("host",))
    with tempfile.TemporaryDirectory() as folder:
        storage = Storage(Path(folder))
        for first in range(0, len(lines), 20_000):
            storage.write_lp("db", "\n".join(lines[first : first + 20_000]), precision="s")
        local = _timed(lambda: storage.query("db", sql, SINCE), options.repeat)
        storage.close()
    queries = DataFusionQueries()
    queries.write_lp("\n".join(f"{point} {seconds * 10**9}" for point, seconds in points))
    fusion = _timed(lambda: queries(sql, SINCE, "db"), options.repeat)
    print(f"{options.rows:,} rows, {options.series:,} series, median of {options.repeat}:")
    print(f"  local engine (SQLite): {local[0] * 1000:8.1f} ms, {local[1]:,} series")
    print(f"  DataFusion:            {fusion[0] * 1000:8.1f} ms, {fusion[1]:,} series")


if __name__ == "__main__":
    main()
