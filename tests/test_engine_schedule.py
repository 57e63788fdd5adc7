"""Scheduled triggers in the local engine (issue 16): ``every:`` and ``cron:`` as InfluxDB 3 runs
them, and the MAD plugin's missing-data check running on a schedule in the engine."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from madcheck.engine.processing import EngineError, ProcessingEngine
from madcheck.engine.schedule import (
    Cron,
    Every,
    ScheduleError,
    call_time,
    parse_every,
    parse_schedule,
)
from madcheck.engine.scheduler import ScheduleWorker
from madcheck.engine.storage import Storage, TriggerDefinition
from tests.engine_harness import wait_for
from tests.support import MAD_PLUGIN, receiver

S = 1_000_000_000
MS = 1_000_000


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * S


def _iso(ns: int | None) -> str:
    assert ns is not None
    return datetime.fromtimestamp(ns // S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _times(cron: str, start: str, n: int) -> list[str]:
    schedule = Cron.parse(cron)
    found, at = [], _ns(start)
    for _ in range(n):
        nxt = schedule.next_after(at)
        assert nxt is not None
        found.append(_iso(nxt))
        at = nxt
    return found


# -- parsing, as InfluxDB 3 parses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("10s", 10 * S),
        ("1m", 60 * S),
        ("1h 30m", 5_400 * S),
        ("500ms", 500 * MS),
        ("2 minutes", 120 * S),
        ("1M", 2_630_016 * S),  # humantime: M is a month, m a minute
        ("1year", 31_557_600 * S),
    ],
)
def test_every_durations_are_read_as_humantime_reads_them(text: str, ns: int) -> None:
    assert parse_every(text) == ns


@pytest.mark.parametrize(
    "text",
    ["", "soon", "1.5h", "-1s", "0s", "500us", "1y 1s", "1 parsec", "9" * 400 + "y", "1w" * 100],
)
def test_every_durations_influxdb_refuses_or_cannot_run_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_every(text)


def test_every_starts_at_the_next_multiple_of_its_interval_and_never_skips_a_time() -> None:
    every = Every(parse_every("1m"))
    first = every.first_after(_ns("2026-12-01T20:21:13") + 5 * MS)
    assert _iso(first) == "2026-12-01T20:22:00"
    assert every.next_after(first) == first + 60 * S  # from the scheduled time, late or not


def test_cron_fields_are_seconds_first_with_an_optional_year() -> None:
    assert _times("*/20 * * * * *", "2026-12-01T20:21:13", 3) == [
        "2026-12-01T20:21:20",
        "2026-12-01T20:21:40",
        "2026-12-01T20:22:00",
    ]
    assert _times("0 30 9 1,15 May-Aug * 2027", "2026-12-01T00:00:00", 3) == [
        "2027-05-01T09:30:00",
        "2027-05-15T09:30:00",
        "2027-06-01T09:30:00",
    ]
    assert Cron.parse("0 0 0 1 1 * 2025").next_after(_ns("2026-01-01T00:00:00")) is None


def test_cron_days_of_week_count_sunday_as_one_and_both_day_fields_must_match() -> None:
    # 2026-12-06 is a Sunday
    assert _times("0 0 12 * * 1", "2026-12-01T00:00:00", 1) == ["2026-12-06T12:00:00"]
    assert _times("0 0 12 * * Mon-Fri", "2026-12-05T00:00:00", 1) == ["2026-12-07T12:00:00"]
    # the 13th that is a Friday (the crate requires both fields, unlike Unix cron's "either")
    assert _times("0 0 0 13 * FRI", "2026-01-01T00:00:00", 2) == [
        "2026-02-13T00:00:00",
        "2026-03-13T00:00:00",
    ]
    assert _times("@daily", "2026-12-01T20:00:00", 1) == ["2026-12-02T00:00:00"]


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "61 * * * * *",
        "* * * * * 0",
        "? * * * * *",
        "* * * L * *",
        "5-1 * * * * *",
        "*/0 * * * * *",
        "0 0 0 1 1 * 1969",
        "0 0 0 1 1 * 99999999999999999999",
        "1," * 10_000 + "x * * * * *",
    ],
)
def test_cron_expressions_outside_the_crates_syntax_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(f"cron:{expression}")


def test_call_time_is_whole_seconds_naive_local_as_influxdb_passes_it() -> None:
    moment = call_time(1_700_000_000 * S + 750 * MS)
    assert moment.tzinfo is None and moment == datetime.fromtimestamp(1_700_000_000)


# -- the engine runs them ------------------------------------------------------------------------

RECORDER = """
def process_scheduled_call(influxdb3_local, call_time, args=None):
    calls = influxdb3_local.cache.get("calls", 0) + 1
    influxdb3_local.cache.put("calls", calls)
    if args and args.get("fail_first") and calls == 1:
        influxdb3_local.cache.put("failed_at", f"{call_time.timestamp():.0f}")
        raise RuntimeError("first call fails")
    if args and args.get("sleep"):
        import time
        time.sleep(float(args["sleep"]))
    failed_at = influxdb3_local.cache.get("failed_at")
    influxdb3_local.info(
        f"call {calls} at {call_time.timestamp():.0f} {type(call_time).__name__} {failed_at}"
    )
"""


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage(tmp_path / "data")
    yield store
    store.close()


#: a scheduled call whose writes to db include one the table refuses (text into a float column)
BAD_WRITES = """
def process_scheduled_call(influxdb3_local, call_time, args=None):
    if influxdb3_local.cache.get("done"):
        return
    influxdb3_local.cache.put("done", True)
    influxdb3_local.write(LineBuilder("cpu").string_field("v", "text now"))
    influxdb3_local.write(LineBuilder("ok").int64_field("v", 1))
    influxdb3_local.info("wrote")
"""


def _engine(storage: Storage, tmp_path: Path) -> ProcessingEngine:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "recorder.py").write_text(RECORDER)
    (plugins / "bad_writes.py").write_text(BAD_WRITES)
    shutil.copy(MAD_PLUGIN, plugins / "mad_check_plugin.py")
    return ProcessingEngine(storage, plugins, retry_pause_s=0.0)


def _trigger(name: str, spec: str, plugin: str = "recorder.py", **kw: Any) -> TriggerDefinition:
    return TriggerDefinition(
        database="db",
        name=name,
        plugin_filename=plugin,
        trigger_specification=spec,
        trigger_arguments=kw.pop("args", {}),
        **kw,
    )


def _logs(storage: Storage, trigger: str) -> list[str]:
    rows = storage.query(
        "db",
        "SELECT log_text FROM system.processing_engine_logs WHERE trigger_name = $t "
        "ORDER BY event_time",
        {"t": trigger},
    )
    return [str(row["log_text"]) for row in rows]


def _tables(storage: Storage) -> set[str]:
    return {str(row["table_name"]) for row in storage.query("db", "SHOW TABLES")}


def _calls(storage: Storage, trigger: str) -> list[str]:
    return [text for text in _logs(storage, trigger) if text.startswith("call ")]


def test_an_every_trigger_is_called_at_each_time_with_a_datetime(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _engine(storage, tmp_path)
    storage.write_lp("db", "cpu v=1 1", precision="ns")
    engine.create_trigger(_trigger("tick", "every:1s"))
    try:
        wait_for(lambda: len(_calls(storage, "tick")) >= 2, "two scheduled calls")
    finally:
        engine.close()
    first, second = (text.split() for text in _calls(storage, "tick")[:2])
    assert first[4] == second[4] == "datetime"
    assert int(second[3]) - int(first[3]) == 1  # one interval apart, whole seconds


def test_a_cron_trigger_is_called_at_its_seconds(storage: Storage, tmp_path: Path) -> None:
    engine = _engine(storage, tmp_path)
    storage.write_lp("db", "cpu v=1 1", precision="ns")
    engine.create_trigger(_trigger("cron", "cron:* * * * * *"))  # every second
    try:
        wait_for(lambda: len(_calls(storage, "cron")) >= 2, "two cron calls")
    finally:
        engine.close()
    first, second = (int(text.split()[3]) for text in _calls(storage, "cron")[:2])
    assert second == first + 1


def test_a_slow_call_makes_the_missed_times_run_at_once_in_order() -> None:
    scheduled: list[int] = []
    done = threading.Event()

    def slow_call(scheduled_ns: int) -> bool:
        scheduled.append(scheduled_ns)
        time.sleep(0.25)  # two and a half intervals
        if len(scheduled) == 4:
            done.set()
        return True

    worker = ScheduleWorker("slow", Every(100 * MS), slow_call, run_async=False, max_async_calls=1)
    try:
        assert done.wait(30)
    finally:
        worker.stop()
        worker.join(30)
    step = 100 * MS
    assert scheduled[:4] == [scheduled[0] + i * step for i in range(4)]  # none skipped


def test_run_async_calls_overlap() -> None:
    running, overlapped = [0], threading.Event()
    lock = threading.Lock()

    def call(scheduled_ns: int) -> bool:
        with lock:
            running[0] += 1
            if running[0] > 1:
                overlapped.set()
        overlapped.wait(5)
        with lock:
            running[0] -= 1
        return True

    worker = ScheduleWorker("async", Every(50 * MS), call, run_async=True, max_async_calls=4)
    try:
        assert overlapped.wait(30)
    finally:
        worker.stop()
        worker.join(30)


def test_a_failing_scheduled_call_follows_error_behavior(storage: Storage, tmp_path: Path) -> None:
    engine = _engine(storage, tmp_path)
    storage.write_lp("db", "cpu v=1 1", precision="ns")
    engine.create_trigger(_trigger("logs", "every:1s", args={"fail_first": "1"}))
    engine.create_trigger(
        _trigger("off", "every:1s", args={"fail_first": "1"}, error_behavior="disable")
    )
    try:
        wait_for(lambda: _calls(storage, "logs"), "a call after the failing one")
        wait_for(lambda: any("disabled" in t for t in _logs(storage, "off")), "disabled")
    finally:
        engine.close()
    assert any(
        "error running process_scheduled_call: RuntimeError" in t for t in _logs(storage, "logs")
    )
    assert _calls(storage, "off") == []
    assert [t.disabled for t in storage.triggers() if t.name == "off"] == [True]


def test_error_behavior_retry_runs_the_same_scheduled_time_again(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _engine(storage, tmp_path)
    storage.write_lp("db", "cpu v=1 1", precision="ns")
    engine.create_trigger(
        _trigger("again", "every:1s", args={"fail_first": "1"}, error_behavior="retry")
    )
    try:
        wait_for(lambda: _calls(storage, "again"), "the retried call")
    finally:
        engine.close()
    assert not any("first call fails" in t for t in _logs(storage, "again"))  # server output only
    _, number, _, at, _, failed_at = _calls(storage, "again")[0].split()
    assert number == "2" and at == failed_at  # the failed call's own time, run again


def test_a_scheduled_calls_writes_to_a_database_are_all_or_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _engine(storage, tmp_path)
    storage.write_lp("db", "cpu v=1 1", precision="ns")
    engine.create_trigger(_trigger("writer", "every:1s", "bad_writes.py"))
    try:
        wait_for(lambda: any("rejected" in t for t in _logs(storage, "writer")), "the rejection")
    finally:
        engine.close()
    rejected = [t for t in _logs(storage, "writer") if "rejected" in t]
    assert rejected[0].startswith(
        "plugin write to 'db' rejected: all 2 line(s) lost (accept_partial=false); line 1:"
    )
    assert "ok" not in _tables(storage)


def test_bad_schedules_are_refused_when_the_trigger_is_created(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _engine(storage, tmp_path)
    with pytest.raises(EngineError, match="6 or 7 fields"):
        engine.create_trigger(_trigger("bad", "cron:*/5 * * * *"))
    engine.close()


def test_the_mad_plugin_checks_missing_data_on_a_schedule_in_the_engine(
    storage: Storage, tmp_path: Path
) -> None:
    """The local engine's SQL answers the missing-data query too; the alert reaches a receiver."""
    engine = _engine(storage, tmp_path)
    now_s = int(datetime.now(tz=UTC).timestamp())
    storage.write_lp(
        "db", f"cpu,host=a temp=1 {now_s - 600}\ncpu,host=b temp=1 {now_s + 3600}", precision="s"
    )
    with receiver() as notifier:
        args = {
            "measurement": "cpu",
            "senders": "http",
            "http_webhook_url": "http://127.0.0.1:9/hook",
            "port_override": str(notifier.port),
            "missing_after": "5m",
        }
        engine.create_trigger(_trigger("gaps", "every:1s", "mad_check_plugin.py", args=args))
        try:
            wait_for(lambda: notifier.requests, "the missing-data alert")
            wait_for(lambda: "mad_alerts" in _tables(storage), "its history row")
        finally:
            engine.close()
    (request,) = notifier.requests
    assert request.body["alert"]["tags"] == {"host": "a"}
    (row,) = storage.query("db", "SELECT host, rule, state FROM mad_alerts")
    assert row == {"host": "a", "rule": "missing", "state": "firing"}
    assert not any("ERROR" in text for text in _logs(storage, "gaps"))
