"""Points per second of ``madcheck replay``, beside the plugin's write-path rate on the same data.

    .venv/bin/python bench/bench_replay.py --points 200000 1000000

Generates line protocol: ``--series`` hosts (default 50) reporting every 10 s with two fields
(``temp`` Gaussian with rare spikes, ``load``), checked by one condition (``temp:3:30:3``). Each
size is replayed twice in this process: with the terminal summary only, and with
``--alerts --plot --report``. The reference is the write path: the same rows, already parsed, handed
to the plugin's ``process_writes`` in flushes of 10,000 rows, as the engine would after WAL flushes
(the plugin file executed afresh each call, as the engine does). The ratio is replay / write path:
the replay also reads and parses the file, so 1.0 would mean parsing were free.

Rates are by this process's CPU time (threads included), which stays meaningful on a shared
machine; wall-clock seconds are printed beside them. Nothing here is asserted: speed depends on
the machine, so it is measured here and stated in docs/replay.md, never tested. Run it against
another checkout with ``PYTHONPATH=OTHER/src``.
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
from typing import Any

from madcheck.cli import main
from madcheck.demo import plugin_source_dir
from madcheck.engine.api import EngineAPI
from madcheck.engine.catalog import SchemaQueries
from madcheck.engine.lineprotocol import iter_lines, to_engine_row
from madcheck.engine.loader import load_entry_point

CONDITION = "temp:3:30:3"
WRITE_PATH_FLUSH = 10_000


def generate(path: Path, points: int, series: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    start_s = 1_700_000_000
    with path.open("w") as handle:
        for index in range(points):
            step, host = divmod(index, series)
            value = rng.gauss(50.0, 2.0)
            if rng.random() < 0.002:
                value += 40.0
            load = rng.random()
            handle.write(
                f"cpu,host=h{host:03d} temp={value:.3f},load={load:.3f} {start_s + step * 10}\n"
            )


def replay_seconds(path: Path, extra: list[str]) -> tuple[float, float]:
    """CPU and wall-clock seconds of one replay."""
    argv = ["replay", str(path), "--measurement", "cpu", "--mad-thresholds", CONDITION]
    argv += ["--no-progress", *extra]
    cpu, wall = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if code != 0:
        sys.exit(f"replay failed with exit status {code}")
    return cpu, wall


def write_path_seconds(path: Path) -> float:
    """The plugin's ``process_writes`` alone on the parsed rows, in engine-sized flushes."""
    with path.open() as handle:
        rows: list[dict[str, Any]] = [
            to_engine_row(point)  # type: ignore[arg-type]
            for point in iter_lines(handle, "auto")
        ]
    catalog = SchemaQueries()
    catalog.add_columns("cpu", ["host"], ["temp", "load"])
    engine = EngineAPI("bench", trigger_name="bench", query_handler=catalog)
    plugin = plugin_source_dir() / "mad_check_plugin.py"
    args = {
        "measurement": "cpu",
        "mad_thresholds": CONDITION,
        "senders": "http",
        "http_webhook_url": "http://127.0.0.1:9/never",
        "port_override": "9",
        "influxdb3_auth_token": "bench",
        "notification_attempts": "1",
        "warm_start": "false",
    }
    started = time.process_time()
    for offset in range(0, len(rows), WRITE_PATH_FLUSH):
        batch = [{"table_name": "cpu", "rows": rows[offset : offset + WRITE_PATH_FLUSH]}]
        load_entry_point(plugin, "process_writes")(engine, batch, dict(args))
        engine.take_writes()
        engine.take_logs()
    return time.process_time() - started


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--skip-outputs", action="store_true", help="summary-only runs")
    options = parser.parse_args()
    print(
        f"{'points':>10} {'run':<26} {'CPU s':>6} {'wall s':>7} {'points/s':>10} "
        f"{'write path':>11} ratio"
    )
    for points in options.points:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.lp"
            generate(path, points, options.series)
            reference = points / write_path_seconds(path)
            runs: list[tuple[str, list[str]]] = [("summary", [])]
            if not options.skip_outputs:
                outputs = ["--alerts", f"{folder}/alerts.csv", "--plot", f"{folder}/charts"]
                runs.append(
                    ("--alerts --plot --report", [*outputs, "--report", f"{folder}/r.html"])
                )
            for label, extra in runs:
                cpu, wall = replay_seconds(path, extra)
                rate = points / cpu
                print(
                    f"{points:>10,} {label:<26} {cpu:>6.1f} {wall:>7.1f} {rate:>10,.0f} "
                    f"{reference:>11,.0f} {rate / reference:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    cli()
