"""Noise control against a generated storm: how many notifications reach the notifier.

python bench/bench_noise.py [--series 500] [--regions 5] [--spread 10] [--cap 10]

``--series`` series of ``--regions`` regions all go strange within ``--spread`` seconds: each
has a calm window, then two outliers (``temp:3:9:2`` fires at the second), the second outliers
spread evenly over the spread, written in one flush per second of data, as a storm reaches the
trigger. The same storm goes through the real plugin three times, side by side:

* no option (the seed's behaviour, the reference): one notification per alert;
* ``group_by=region`` (``group_wait=30s``): one notification per region;
* ``max_notifications_per_minute=--cap``: that many, then one summary.

Notifications are counted at a loopback notifier; the waits (``group_wait``, the cap's minute)
are passed by moving the trigger's outbox clock, not by sleeping. Also shown: the alerts-table
rows by state, so "nothing is lost" can be checked. Run by hand, not by pytest.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import make_engine, receiver, run_mad_plugin

from madcheck.plugin.delivery import wait_for_delivery, wait_for_sender
from madcheck.plugin.writes import STATE_KEY

START_S = 1_764_446_400
CALM = [10, 12, 11, 13, 9, 11, 12, 10, 11]


def storm_flushes(series: int, regions: int, spread_s: float) -> list[list[dict[str, Any]]]:
    """One flush per second of data: every series' calm window in the first, and each series'
    two outliers in the flush of the second its alert fires."""
    calm_rows = []
    late: dict[int, list[dict[str, Any]]] = {}
    for i in range(series):
        tags = {"host": f"web{i:04d}", "region": f"r{i % regions}"}
        for step, value in enumerate(CALM):
            calm_rows.append({**tags, "temp": value, "time": (START_S + step) * 10**9})
        fires_ns = round((START_S + 20 + spread_s * i / series) * 10**9)
        second = int((fires_ns - START_S * 10**9) // 10**9)
        late.setdefault(second, []).extend(
            [
                {**tags, "temp": 100.0, "time": fires_ns - 1},
                {**tags, "temp": 100.0, "time": fires_ns},
            ]
        )
    flushes = [[{"table_name": "cpu", "rows": calm_rows}]]
    flushes.extend([{"table_name": "cpu", "rows": late[s]}] for s in sorted(late))
    return flushes


def run(flushes: list[list[dict[str, Any]]], **extra: str) -> tuple[int, Counter[str], float]:
    """Notifications received, alerts-table rows by state, and seconds the calls took."""
    tables = {"cpu": {"tags": ["host", "region"], "fields": ["temp"]}}
    with receiver() as notifier:
        engine = make_engine(tables)
        args = {
            "measurement": "cpu",
            "mad_thresholds": "temp:3:9:2",
            "senders": "http",
            "http_webhook_url": "http://127.0.0.1:9/unused",
            "port_override": str(notifier.port),
            "warm_start": "false",
            "silences_table": "",
            **extra,
        }
        started = time.perf_counter()
        for flush in flushes:
            run_mad_plugin(engine, flush, args)
        took = time.perf_counter() - started
        wait_for_sender(engine, 60.0)
        state = engine.cache.get(STATE_KEY)
        state.outbox.clock = lambda: time.monotonic() + 3600.0  # past every wait
        state.sender.ensure_running(wake=True)
        if not wait_for_delivery(engine, 120.0):
            raise SystemExit("the notifier stand-in did not get everything")
        received = len(notifier.requests)
    states = Counter(
        dict(p.split("=") for p in w.line.split(" ")[0].split(",")[1:])["state"]
        for w in engine.writes
        if w.line.startswith("mad_alerts,")
    )
    return received, states, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the storm lasts")
    parser.add_argument("--cap", type=int, default=10)
    options = parser.parse_args()
    flushes = storm_flushes(options.series, options.regions, options.spread)
    print(
        f"storm: {options.series} series of {options.regions} regions alerting within "
        f"{options.spread:g} s of data, {len(flushes)} flushes"
    )
    print(f"{'configuration':<40} {'notifications':>13}  {'calls (s)':>9}  alerts table")
    capped = {"max_notifications_per_minute": str(options.cap)}
    for label, extra in (
        ("no option (reference)", {}),
        ("group_by=region", {"group_by": "region"}),
        (f"max_notifications_per_minute={options.cap}", capped),
        (f"group_by=region, max_..._per_minute={options.cap}", {"group_by": "region", **capped}),
    ):
        received, states, took = run(flushes, **extra)
        rows = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        print(f"{label:<40} {received:>13}  {took:>9.3f}  {rows}")


if __name__ == "__main__":
    main()
