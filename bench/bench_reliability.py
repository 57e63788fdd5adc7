"""Reliability figures: alerts across a notifier outage, the longest call with a hanging notifier,
points until the first verdict after a restart (run by hand, not by pytest).

python bench/bench_reliability.py

Everything runs on loopback: the plugin file executed as the engine does, a stand-in notifier.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stored_history import make_engine_with_history
from tests.support import make_engine, receiver, run_mad_plugin

from madcheck.plugin.delivery import wait_for_delivery
from madcheck.plugin.writes import STATE_KEY

START_S = 1_764_446_400
OK = (200, {"status": "ok", "results": {"http": {"ok": True, "reason": "HTTP 200"}}}, 0.0, {})
DOWN = (503, {"error": "unavailable"}, 0.0, {})


def _args(port: int, **extra: str) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:20:2",
        "senders": "http",
        "http_webhook_url": "https://hooks.example/bench",
        "port_override": str(port),
        "retry_backoff": "0",
        "warm_start": "false",
        **extra,
    }


def _point(host: str, second: int, value: float) -> dict[str, object]:
    return {"host": host, "temp": value, "time": second * 1_000_000_000}


def outage() -> None:
    """60 flushes, 20 hosts; every host has an anomaly now and then; the notifier is down
    (HTTP 503) for flushes 10-39, then recovers."""
    rng = random.Random(7)
    hosts = [f"h{i}" for i in range(20)]
    with receiver() as notifier:
        statuses: list[int] = []
        answer = notifier.next_answer

        def recording_answer() -> tuple[int, object, float, dict[str, str]]:
            status, body, delay, headers = answer()
            statuses.append(status)
            return status, body, delay, headers

        notifier.next_answer = recording_answer  # type: ignore[method-assign]
        engine = make_engine({"cpu": {"tags": ["host"], "fields": ["temp"]}})
        args = _args(notifier.port, outbox_backoff="20ms", outbox_backoff_max="200ms")
        flush = during = 0
        for flush in range(60):
            notifier.script = [DOWN] if 10 <= flush < 40 else [OK]
            batch = []
            for host in hosts:
                for step in range(5):
                    second = START_S + (flush * 5 + step) * 10
                    spike = rng.random() < 0.02
                    value = 100.0 if spike else rng.gauss(20, 1)
                    batch.append(_point(host, second, value))
                    if spike:  # a second outlier right after: the count rule (2) fires
                        batch.append(_point(host, second + 1, 100.0))
            before = len(engine.writes)
            run_mad_plugin(engine, [{"table_name": "cpu", "rows": batch}], args)
            if 10 <= flush < 40:
                during += sum(1 for w in engine.writes[before:] if _firing(w.line))
            time.sleep(0.01)
        drained = wait_for_delivery(engine, 60)  # the background sender needs no more writes
        raised = sum(1 for w in engine.writes if _firing(w.line))
        answered_ok = [
            r.body["alert"]
            for r, status in zip(notifier.requests, statuses, strict=True)
            if status == 200
        ]
        unique = {(a["tags"]["host"], a["time"]) for a in answered_ok}
    print(
        f"outage: {raised} alerts raised ({during} while the notifier was down), "
        f"{len(unique)} delivered "
        f"({len(answered_ok)} accepted deliveries, so {len(answered_ok) - len(unique)} duplicates)"
        f", {len(notifier.requests)} requests in all, {flush + 1} flushes, outbox drained: "
        f"{drained}"
    )


def _firing(line: str) -> bool:
    """A history row (``alerts_table``) of a firing alert: its tags hold ``state=firing``."""
    return "state=firing" in line.split(" ", 1)[0].split(",")


def hanging() -> None:
    """The notifier accepts connections and never answers in time; every flush brings alerts."""
    with receiver() as notifier:
        notifier.script = [(200, {}, 30.0, {})]
        engine = make_engine({"cpu": {"tags": ["host"], "fields": ["temp"]}})
        args = _args(notifier.port, outbox_backoff="0")  # worst case: retry on every flush
        longest = 0.0
        for flush in range(5):
            base = [20.0 + (i % 3) for i in range(20)]
            rows = [
                _point(f"h{flush}-{n}", START_S + i * 10, v)
                for n in range(3)
                for i, v in enumerate([*base, 100.0, 100.0])
            ]
            started = time.monotonic()
            run_mad_plugin(engine, [{"table_name": "cpu", "rows": rows}], args)
            longest = max(longest, time.monotonic() - started)
        waiting = len(engine.cache.get(STATE_KEY).outbox)
    print(
        f"hanging notifier: longest process_writes call {longest * 1e3:.1f} ms "
        f"(notification_timeout 10 s; delivery runs in the background), {waiting} alerts waiting"
    )


def first_verdict(window: int, warm: bool) -> int:
    """Points fed one per flush after a restart until the first verdict (k tiny, so every
    verdict is an outlier and shows in the batch's log line)."""
    rng = random.Random(3)
    engine = make_engine_with_history({"cpu": {"tags": ["host"], "fields": ["temp"]}})
    engine.query_handler.stored["cpu"] = [
        _point("a", START_S + i * 10, rng.gauss(20, 1))
        for i in range(360)  # the last hour
    ]
    args = _args(1, mad_thresholds=f"temp:0.000001:{window}:1000", warm_start=str(warm).lower())
    for n in range(1, 10 * window):
        second = START_S + (360 + n) * 10
        run_mad_plugin(
            engine, [{"table_name": "cpu", "rows": [_point("a", second, rng.gauss(20, 1))]}], args
        )
        if any("outlier verdicts temp" in line for line in engine.log_texts("INFO")):
            return n
    return -1


def main() -> None:
    outage()
    hanging()
    for window in (20, 100):
        cold, warm = first_verdict(window, False), first_verdict(window, True)
        print(
            f"restart, window_count={window}: first verdict after {cold} new points without "
            f"warm start, after {warm} with it"
        )


if __name__ == "__main__":
    main()
