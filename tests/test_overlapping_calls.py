"""Calls of one trigger that overlap (``--run-asynchronous``) keep its state consistent.

Several threads call the plugin file on one engine and one cache at once, each with the batches
of its own series, in order. Whatever the interleaving, the result must be the serial one: one
state built, every row in its window, exactly one alert per qualifying run.
"""

from __future__ import annotations

import random
import sys
import threading

from madcheck.engine.cache import TriggerCache
from tests.support import free_port, make_engine, run_mad_plugin

THREADS = 6
CALLS = 15
HOSTS_PER_THREAD = 4


def args_for(port: int) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:10:3@temp:3:10:30s",
        "senders": "http",
        "http_webhook_url": "https://hooks.example/overlap",
        "port_override": str(port),
        "outbox_backoff": "1h",
        "outbox_backoff_max": "1h",
        "warm_start": "false",
    }


def thread_batches(thread: int) -> list[list[dict]]:
    """``CALLS`` batches of this thread's hosts: noise with runs of outliers now and then."""
    rng = random.Random(thread)
    calls = []
    for call in range(CALLS):
        rows = []
        for h in range(HOSTS_PER_THREAD):
            host = f"t{thread}h{h}"
            for step in range(25):
                second = 1_700_000_000 + (call * 25 + step) * 10
                value = 100.0 if rng.random() < 0.08 else rng.gauss(20, 1)
                rows.append({"host": host, "temp": value, "time": second * 1_000_000_000})
        calls.append([{"table_name": "cpu", "rows": rows}])
    return calls


def history_lines(engine) -> list[str]:
    return sorted(w.line for w in engine.writes if w.line.startswith("mad_alerts,"))


def points_logged(engine) -> int:
    lines = [t for t in engine.log_texts("INFO") if "cpu: " in t and " points" in t]
    return sum(int(t.split("cpu: ", 1)[1].split(" points", 1)[0]) for t in lines)


def test_overlapping_calls_give_the_serial_result():
    args = args_for(free_port())
    work = {thread: thread_batches(thread) for thread in range(THREADS)}

    serial = make_engine(cache=TriggerCache())
    for thread in range(THREADS):
        for batch in work[thread]:
            run_mad_plugin(serial, batch, args)

    shared = make_engine(cache=TriggerCache())
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def caller(thread: int) -> None:
        try:
            start.wait()
            for batch in work[thread]:
                run_mad_plugin(shared, batch, args)
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch very often: unguarded calls would interleave
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)

    assert not failures
    assert not shared.log_texts("ERROR") or all(
        "alert delivery failed" in line for line in shared.log_texts("ERROR")
    )
    loaded = [t for t in shared.log_texts("INFO") if "configuration loaded" in t]
    assert len(loaded) == 1  # one state, built once, although the first calls raced
    total_rows = THREADS * CALLS * HOSTS_PER_THREAD * 25
    assert points_logged(shared) == points_logged(serial) == total_rows
    alerts = history_lines(shared)
    assert alerts and alerts == history_lines(serial)  # the same alerts, each exactly once
    assert len(alerts) == len(set(alerts))


def test_overlapping_calls_on_one_series_alert_once_per_run_and_lose_no_value():
    """Every call brings the same series 20 normal points and then a run of 3 outliers: each
    call's run is one count alert, whichever order the calls take the series in. Threads are
    made to switch very often, so unguarded calls would interleave inside a series."""
    args = {**args_for(free_port()), "mad_thresholds": "temp:3:10:3"}
    engine = make_engine(cache=TriggerCache())
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def caller(thread: int) -> None:
        try:
            start.wait()
            for call in range(CALLS):
                base = 1_700_000_000 + (thread * CALLS + call) * 100
                values = [20.0] * 20 + [100.0] * 3
                rows = [
                    {"host": "shared", "temp": v, "time": (base + i) * 1_000_000_000}
                    for i, v in enumerate(values)
                ]
                run_mad_plugin(engine, [{"table_name": "cpu", "rows": rows}], args)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert not failures
    assert points_logged(engine) == THREADS * CALLS * 23
    firing = [line for line in history_lines(engine) if "state=firing" in line]
    assert len(firing) == THREADS * CALLS
