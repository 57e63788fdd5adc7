"""Write latency of ``madcheck serve`` with a plugin that sleeps per call: an older revision (the
reference, ``main`` by default) and this checkout, side by side, measured by one process at once.

python bench/bench_slow_plugin_writes.py [--before main] [--sleep 2] [--flush-interval 100ms]
                                          [--duration 30] [--write-every 0.02]

Both servers run the same plugin (``time.sleep(sleep)`` per call) on a ``table:cpu`` trigger and
get the same steady stream of one-line writes over loopback. The engine that follows InfluxDB 3
queues 60 flushes per trigger and then makes writers wait; one that merges batches never does.
With a 100 ms flush interval and 2 s calls the queue is full after about 6 s (with InfluxDB 3's
1 s interval it would take about 2 minutes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent

PLUGIN = """
import time


def process_writes(influxdb3_local, table_batches, args=None):
    influxdb3_local.info("rows=" + str(sum(len(b["rows"]) for b in table_batches)))
    time.sleep(float(args["sleep_s"]))
"""


class Server:
    """``madcheck serve`` from one source tree, in a subprocess on a free loopback port."""

    def __init__(self, label: str, src: Path, data: Path, plugins: Path, flush: str) -> None:
        self.label = label
        env = {**os.environ, "PYTHONPATH": str(src)}
        env.pop("INFLUXDB3_AUTH_TOKEN", None)
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "madcheck", "serve", "--node-id", "bench",
                "--object-store", "file", "--data-dir", str(data), "--plugin-dir", str(plugins),
                "--http-bind", "127.0.0.1:0", "--without-auth", "--wal-flush-interval", flush,
                "--log-level", "warning",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.url = ""
        for line in self.process.stdout:
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].split()[0]
                break
        if not self.url:
            raise SystemExit(f"{label}: serve did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def create_trigger(self, sleep_s: float) -> None:
        response = requests.post(
            f"{self.url}/api/v3/configure/processing_engine_trigger",
            json={
                "db": "bench",
                "trigger_name": "sleepy",
                "plugin_filename": "sleepy.py",
                "trigger_specification": "table:cpu",
                "trigger_arguments": {"sleep_s": str(sleep_s)},
                "disabled": False,
                "trigger_settings": {"run_async": False, "error_behavior": "log"},
            },
            timeout=30,
        )
        response.raise_for_status()

    def calls(self) -> list[int]:
        response = requests.post(
            f"{self.url}/api/v3/query_sql",
            json={"db": "bench", "q": "SELECT log_text FROM system.processing_engine_logs"},
            timeout=30,
        )
        response.raise_for_status()
        return [int(row["log_text"].removeprefix("rows=")) for row in response.json()]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def write_steadily(url: str, every_s: float, until: float, latencies: list[float]) -> None:
    """One line every ``every_s`` (or back to back when a write takes longer)."""
    n = 0
    while (start := time.monotonic()) < until:
        response = requests.post(
            f"{url}/api/v3/write_lp?db=bench", data=f"cpu v={n} {n + 1}", timeout=600
        )
        response.raise_for_status()
        latencies.append(time.monotonic() - start)
        n += 1
        time.sleep(max(0.0, every_s - (time.monotonic() - start)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="main", help="git revision of the reference")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds each call sleeps")
    parser.add_argument("--flush-interval", default="100ms", help="--wal-flush-interval")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of writing")
    parser.add_argument("--write-every", type=float, default=0.02, help="seconds between writes")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-slow-") as scratch:
        root = Path(scratch)
        before_src = root / "before"
        before_src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", options.before, "src"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(before_src)], input=archive, check=True)
        plugins = root / "plugins"
        plugins.mkdir()
        (plugins / "sleepy.py").write_text(PLUGIN)
        servers = [
            Server(f"before ({options.before})", before_src / "src", root / "d1", plugins,
                   options.flush_interval),
            Server("after (this checkout)", REPO / "src", root / "d2", plugins,
                   options.flush_interval),
        ]  # fmt: skip
        try:
            for server in servers:
                server.create_trigger(options.sleep)
            until = time.monotonic() + options.duration
            results: dict[str, list[float]] = {server.label: [] for server in servers}
            writers = [
                threading.Thread(
                    target=write_steadily,
                    args=(server.url, options.write_every, until, results[server.label]),
                )
                for server in servers
            ]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            print(
                f"plugin sleeps {options.sleep:g} s per call, flush interval "
                f"{options.flush_interval}, one write every {options.write_every:g} s for "
                f"{options.duration:g} s\n"
            )
            header = (
                f"{'engine':<24}{'writes':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
                f"{'mean ms':>10}{'calls':>7}{'rows/call max':>15}"
            )
            print(header)
            for server in servers:
                latencies = results[server.label]
                calls = server.calls()
                print(
                    f"{server.label:<24}{len(latencies):>8}"
                    f"{_percentile(latencies, 0.5) * 1e3:>10.1f}"
                    f"{_percentile(latencies, 0.99) * 1e3:>10.1f}"
                    f"{max(latencies) * 1e3:>10.1f}"
                    f"{statistics.fmean(latencies) * 1e3:>10.1f}"
                    f"{len(calls):>7}{max(calls, default=0):>15}"
                )
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
