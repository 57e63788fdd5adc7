"""Delivery off the write path: what a call costs whatever the notifier does, and what arrives.

python bench/bench_delivery.py [--calls 200] [--outage 30] [--hang 30]

1. ``process_writes`` call time (p50 / p99 / max) with a healthy notifier, one that hangs
   (answers after ``--hang`` seconds), one refusing connections and one answering 503, each call
   raising one alert; beside it, in the same process, the same calls without alerts (nothing
   to deliver).
2. Both plugins end to end (MAD trigger -> loopback engine route running the notifier plugin ->
   stand-in Slack and webhook): alerts raised vs delivered, and duplicates per channel, across
   an ``--outage``-second notifier outage (503; every second one after the notifier ran, its
   answer lost), and with the webhook channel hanging ``--hang`` seconds per request.
3. The longest notifier call with that hanging channel.

Everything runs on 127.0.0.1. Run by hand, not by pytest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import standins
from tests.notifier_calls import PLUGIN
from tests.support import free_port, make_engine, receiver, run_mad_plugin

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point
from madcheck.plugin.delivery import wait_for_delivery

START_S = 1_764_446_400
TOKEN = "apiv3_bench_delivery_token"
OK_BODY = {"status": "ok", "results": {"http": {"ok": True, "reason": "HTTP 200"}}}


def mad_args(port: int, **extra: str) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:20:2",
        "senders": "http",
        "http_webhook_url": "http://127.0.0.1:9/unused",
        "influxdb3_auth_token": TOKEN,
        "port_override": str(port),
        "warm_start": "false",
        "alerts_table": "",
        **extra,
    }


def call_batches(calls: int, alerts: bool) -> list[list[dict[str, Any]]]:
    """``calls`` flushes of 20 series x 10 points; with ``alerts``, one series of each flush
    ends in two outliers (one count alert per call)."""
    rng = random.Random(5)
    batches = []
    for call in range(calls):
        rows = []
        for series in range(20):
            for step in range(10):
                second = START_S + (call * 10 + step) * 10
                value = rng.gauss(20, 1)
                if alerts and series == call % 20 and step >= 8:
                    value = 100.0
                rows.append({"host": f"h{series}", "temp": value, "time": second * 10**9})
        batches.append([{"table_name": "cpu", "rows": rows}])
    return batches


def timed_calls(port: int, batches: list[list[dict[str, Any]]]) -> list[float]:
    engine = make_engine({"cpu": {"tags": ["host"], "fields": ["temp"]}})
    args = mad_args(port)
    run_mad_plugin(engine, batches[0], args)  # the state is built in the first call: not timed
    took = []
    for batch in batches[1:]:
        started = time.perf_counter()
        run_mad_plugin(engine, batch, args)
        took.append(time.perf_counter() - started)
    return took


def summary(took: list[float]) -> str:
    ordered = sorted(took)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1e3:7.2f} ms  p99 {p99 * 1e3:7.2f} ms  "
        f"max {ordered[-1] * 1e3:7.2f} ms"
    )


def call_times(calls: int, hang: float) -> None:
    print(f"process_writes call time, {calls - 1} timed calls of 200 rows, one alert per call:")
    quiet = call_batches(calls, alerts=False)
    loud = call_batches(calls, alerts=True)
    with receiver() as healthy, receiver() as hanging, receiver() as failing:
        healthy.script = [(200, OK_BODY, 0.0, {})]
        hanging.script = [(200, OK_BODY, hang, {})]
        failing.script = [(503, {"error": "unavailable"}, 0.0, {})]
        cases = [
            ("reference: no alerts", healthy.port, quiet),
            ("healthy notifier", healthy.port, loud),
            (f"hanging notifier ({hang:g} s)", hanging.port, loud),
            ("refusing notifier", free_port(), loud),
            ("notifier answering 503", failing.port, loud),
        ]
        for label, port, batches in cases:
            print(f"  {label:28s} {summary(timed_calls(port, batches))}")


class Channels:
    """Stand-in Slack and webhook; the webhook can hang ``hang`` seconds per request."""

    def __init__(self, hang: float) -> None:
        self.hang = hang
        self.hanging = threading.Event()
        self.slack = standins.StandIn(standins.slack_answer, "/services/T0/B0/bench")
        self.hook = standins.StandIn(self._hook_answer, "/hooks/bench")

    def _hook_answer(self, recorded: standins.Recorded) -> standins.Reply:
        if self.hanging.is_set():
            time.sleep(self.hang)
        return standins.webhook_answer(recorded)

    def close(self) -> None:
        self.slack.close()
        self.hook.close()

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        slack = Counter(r.json()["text"] for r in self.slack.requests)
        hook = Counter(r.json()["alert"]["event_id"] for r in self.hook.requests)
        return slack, hook


def end_to_end(label: str, seconds: float, hang: float, notifier_args: dict[str, str]) -> None:
    """Calls every 0.2 s for 3 x ``seconds``; the trouble lasts the middle third."""
    channels = Channels(hang)
    notifier_engine = EngineAPI(database="mydb", trigger_name="notify")
    route = standins.engine_route(
        lambda *call: load_entry_point(PLUGIN, "process_request")(*call),
        notifier_engine,
        notifier_args,
        TOKEN,
    )
    outage = threading.Event()
    lost = [0]
    notifier_calls: list[float] = []

    def answer(recorded: standins.Recorded) -> standins.Reply:
        if outage.is_set():
            lost[0] += 1
            if lost[0] % 2:
                return standins.server_error(503)  # the notifier never saw it
            route(recorded)  # it ran, but its answer is lost on the way back
            return standins.server_error(503)
        started = time.perf_counter()
        reply = route(recorded)
        notifier_calls.append(time.perf_counter() - started)
        return reply

    endpoint = standins.StandIn(answer, "/api/v3/engine/notify")
    port = int(endpoint.base_url.rsplit(":", 1)[1])
    engine = make_engine({"cpu": {"tags": ["host"], "fields": ["temp"]}})
    args = mad_args(
        port,
        senders="slack.http",
        slack_webhook_url=channels.slack.url,
        http_webhook_url=channels.hook.url,
        alerts_table="mad_alerts",
        notification_count_text="$field on $tags at $time",  # one text per alert event
    )
    rng = random.Random(11)
    started = time.monotonic()
    flush = 0
    longest_call = 0.0
    while (elapsed := time.monotonic() - started) < 3 * seconds:
        trouble = seconds <= elapsed < 2 * seconds
        if label == "outage":
            outage.set() if trouble else outage.clear()
        else:
            channels.hanging.set() if trouble else channels.hanging.clear()
        rows = []
        for host in range(10):
            for step in range(5):
                second = START_S + (flush * 5 + step) * 10
                spike = rng.random() < 0.02
                value = 100.0 if spike else rng.gauss(20, 1)
                rows.append({"host": f"h{host}", "temp": value, "time": second * 10**9})
                if spike:
                    rows.append({"host": f"h{host}", "temp": 100.0, "time": second * 10**9 + 1})
        call_started = time.perf_counter()
        run_mad_plugin(engine, [{"table_name": "cpu", "rows": rows}], args)
        longest_call = max(longest_call, time.perf_counter() - call_started)
        flush += 1
        time.sleep(0.2)
    outage.clear()
    channels.hanging.clear()
    drained = wait_for_delivery(engine, 120)
    raised = sum(1 for w in engine.writes if "state=firing" in w.line.split(" ", 1)[0])
    slack, hook = channels.counts()
    print(
        f"  {label}: {raised} alerts raised in {flush} calls; outbox drained: {drained}; "
        f"longest process_writes call {longest_call * 1e3:.1f} ms"
    )
    for name, seen in (("slack", slack), ("http", hook)):
        print(
            f"    {name:5s}: {len(seen)} delivered, "
            f"{sum(seen.values()) - len(seen)} duplicates ({sum(seen.values())} requests)"
        )
    if notifier_calls:
        print(
            f"    longest notifier call {max(notifier_calls):.3f} s "
            f"(send_deadline {notifier_args.get('send_deadline', '5s')})"
        )
    endpoint.close()
    channels.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--outage", type=float, default=30.0, help="outage length, seconds")
    parser.add_argument("--hang", type=float, default=30.0, help="hang of one request, seconds")
    options = parser.parse_args()
    call_times(options.calls, options.hang)
    print("both plugins end to end (calls every 0.2 s; the trouble is the middle third):")
    fast = {"retry_backoff": "50ms..100ms"}
    end_to_end("outage", options.outage, options.hang, fast)
    end_to_end("hanging http channel", options.outage, options.hang, fast)
    patient = {**fast, "request_timeout": f"{options.hang + 10:g}s"}
    print(f"  (again, with the notifier's request_timeout {options.hang + 10:g} s > the hang)")
    end_to_end("hanging http channel", options.outage, options.hang, patient)


if __name__ == "__main__":
    main()
