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
the machine, so it is measured here and stated in docs/replay.md, never tested.

``--against OTHER/src`` compares with another checkout: every replay then runs in a child
process, alternately with this checkout and with the other one, ``--repeat`` times each, and the
medians are printed side by side with their ratio (the machine's swings hit both alike).

    .venv/bin/python bench/bench_replay.py --points 200000 1000000 --against ../main/src --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import madcheck
from madcheck.cli import main

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


def replay_in_child(source: Path, path: Path, extra: list[str]) -> tuple[float, float]:
    """``replay_seconds`` in a child process importing madcheck from ``source`` (a ``src``)."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, __file__, "--one", str(path), "--", *extra],
        env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"replay with {source} failed: {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.splitlines()[-1])
    return float(measured["cpu"]), float(measured["wall"])


def write_path_seconds(path: Path) -> float:
    """The plugin's ``process_writes`` alone on the parsed rows, in engine-sized flushes."""
    from madcheck.demo import plugin_source_dir
    from madcheck.engine.api import EngineAPI
    from madcheck.engine.catalog import SchemaQueries
    from madcheck.engine.lineprotocol import iter_lines, to_engine_row
    from madcheck.engine.loader import load_entry_point

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
    parser.add_argument("--against", type=Path, help="another checkout's src/ to compare with")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each replay (median)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a child: one replay
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one is not None:
        cpu, wall = replay_seconds(options.one, options.extra)
        print(json.dumps({"cpu": cpu, "wall": wall}))
        return
    this = Path(madcheck.__file__).resolve().parents[1]
    heading = f"{'points':>10} {'run':<26} {'CPU s':>6} {'wall s':>7} {'points/s':>10} "
    heading += f"{'write path':>11} ratio"
    if options.against is not None:
        heading += f" | {'against: CPU s':>14} {'points/s':>10} ratio | time now/against"
    print(heading)
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
                now: list[tuple[float, float]] = []
                against: list[tuple[float, float]] = []
                for _ in range(max(1, options.repeat)):
                    if options.against is None:
                        now.append(replay_seconds(path, extra))
                        continue
                    now.append(replay_in_child(this, path, extra))
                    against.append(replay_in_child(options.against, path, extra))
                cpu = statistics.median(c for c, _ in now)
                wall = statistics.median(w for _, w in now)
                rate = points / cpu
                line = (
                    f"{points:>10,} {label:<26} {cpu:>6.1f} {wall:>7.1f} {rate:>10,.0f} "
                    f"{reference:>11,.0f} {rate / reference:.2f}"
                )
                if against:
                    other = statistics.median(c for c, _ in against)
                    line += (
                        f" | {other:>14.1f} {points / other:>10,.0f} "
                        f"{points / other / reference:.2f} | {cpu / other:.2f}"
                    )
                print(line, flush=True)


if __name__ == "__main__":
    cli()
