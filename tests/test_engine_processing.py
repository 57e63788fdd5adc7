"""The processing engine in-process: one call per flush, trigger specs, queues, trigger settings."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from madcheck.engine.cache import GlobalCache
from madcheck.engine.processing import EngineError, ProcessingEngine
from madcheck.engine.storage import Storage, TriggerDefinition
from tests.engine_harness import wait_for

CALLS_PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    calls = influxdb3_local.cache.get("calls", 0) + 1
    influxdb3_local.cache.put("calls", calls)
    summary = ";".join(
        f"{b['table_name']}:"
        + "|".join(sorted(",".join(f"{k}={v}" for k, v in sorted(r.items())) for r in b["rows"]))
        for b in table_batches
    )
    influxdb3_local.info(f"call {calls} args={args} {summary}")
"""


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage(tmp_path / "data")
    yield store
    store.close()


def _engine(
    storage: Storage, tmp_path: Path, plugin: str = CALLS_PLUGIN, **kw: Any
) -> ProcessingEngine:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "calls.py").write_text(plugin)
    return ProcessingEngine(storage, plugins, **kw)


def _trigger(
    name: str, spec: str, args: dict[str, str] | None = None, **kw: Any
) -> TriggerDefinition:
    return TriggerDefinition(
        database="db",
        name=name,
        plugin_filename="calls.py",
        trigger_specification=spec,
        trigger_arguments=args or {},
        disabled=kw.get("disabled", False),
        run_async=kw.get("run_async", False),
        error_behavior=kw.get("error_behavior", "log"),
    )


def _write(engine: ProcessingEngine, storage: Storage, text: str) -> None:
    result = storage.write_lp("db", text, precision="ns")
    assert not result.errors
    engine.record_writes("db", result.rows)


def _logs(storage: Storage, trigger: str) -> list[str]:
    rows = storage.query(
        "db",
        "SELECT log_text FROM system.processing_engine_logs WHERE trigger_name = $t "
        "ORDER BY event_time",
        {"t": trigger},
    )
    return [str(row["log_text"]) for row in rows]


def test_each_flush_is_one_call_per_trigger_with_rows_of_its_tables(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _engine(storage, tmp_path)
    engine.create_trigger(_trigger("every_table", "all_tables", {"k": "v"}))
    engine.create_trigger(_trigger("cpu_only", "table:cpu"))
    _write(engine, storage, "cpu,host=a usage=1 1\nmem free=2i 2")
    _write(engine, storage, "cpu,host=b usage=3 3")
    assert engine.wait_idle(10)
    _write(engine, storage, "mem free=4i 4")
    assert engine.wait_idle(10)
    engine.close()

    assert _logs(storage, "every_table") == [
        "call 1 args={'k': 'v'} "
        "cpu:host=a,time=1,usage=1.0|host=b,time=3,usage=3.0"
        ";mem:free=2,time=2",
        "call 2 args={'k': 'v'} mem:free=4,time=4",
    ]
    # no call at all for a flush without rows of its table; args None without arguments
    assert _logs(storage, "cpu_only") == [
        "call 1 args=None cpu:host=a,time=1,usage=1.0|host=b,time=3,usage=3.0"
    ]


def test_disabled_trigger_gets_nothing_until_enabled(storage: Storage, tmp_path: Path) -> None:
    engine = _engine(storage, tmp_path)
    engine.create_trigger(_trigger("t", "all_tables", disabled=True))
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    engine.set_disabled("db", "t", False)
    _write(engine, storage, "cpu usage=2 2")
    assert engine.wait_idle(10)
    engine.close()
    assert _logs(storage, "t") == ["call 1 args=None cpu:time=2,usage=2.0"]
    assert [t.disabled for t in storage.triggers()] == [False]


def test_management_errors_carry_http_statuses(storage: Storage, tmp_path: Path) -> None:
    engine = _engine(storage, tmp_path)
    engine.create_trigger(_trigger("t", "request:hook"))
    cases = [
        (lambda: engine.create_trigger(_trigger("t", "all_tables")), 409),
        (lambda: engine.create_trigger(_trigger("u", "request:/hook/")), 409),
        (lambda: engine.create_trigger(_trigger("u", "cron:* * * * *")), 400),
        (lambda: engine.delete_trigger("db", "nope"), 404),
        (lambda: engine.set_disabled("other", "t", True), 404),
    ]
    for action, status in cases:
        with pytest.raises(EngineError) as caught:
            action()
        assert caught.value.status == status
    escaping = _trigger("x", "all_tables")
    escaping = TriggerDefinition(**{**escaping.__dict__, "plugin_filename": "../calls.py"})
    with pytest.raises(EngineError, match="not in the plugin dir"):
        engine.create_trigger(escaping)
    engine.close()


SLOW_PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    gate = influxdb3_local.cache.get("gate", use_global=True)
    influxdb3_local.info("rows=" + str(sum(len(b["rows"]) for b in table_batches)))
    gate.wait(30)
"""


def test_a_slow_trigger_fills_its_60_flush_queue_and_then_writers_wait(
    storage: Storage, tmp_path: Path
) -> None:
    shared = GlobalCache()
    gate = threading.Event()
    shared.put("gate", gate, None)
    engine = _engine(storage, tmp_path, SLOW_PLUGIN, global_cache=shared)
    engine.create_trigger(_trigger("slow", "all_tables"))
    _write(engine, storage, "cpu usage=0 1")
    engine.flush()
    wait_for(lambda: _logs(storage, "slow") == ["rows=1"], "the first call to start")
    # the worker is stuck in the plugin; 60 more flushes fill its queue without waiting
    for value in range(1, 61):
        _write(engine, storage, f"cpu usage={value} {value + 1}")
        engine.flush()
    writer = threading.Thread(target=_write, args=(engine, storage, "cpu usage=99 99"))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive(), "a write returned while the trigger's queue was full"
    gate.set()
    writer.join(10)
    assert not writer.is_alive()
    assert engine.wait_idle(10)
    engine.close()
    # one call per flush, in order: nothing merged, nothing dropped
    assert _logs(storage, "slow") == ["rows=1"] * 62


def test_disabling_a_stuck_trigger_lets_the_writers_go(storage: Storage, tmp_path: Path) -> None:
    shared = GlobalCache()
    gate = threading.Event()
    shared.put("gate", gate, None)
    engine = _engine(storage, tmp_path, SLOW_PLUGIN, global_cache=shared, queue_size=1)
    engine.create_trigger(_trigger("slow", "all_tables"))
    _write(engine, storage, "cpu usage=0 1")
    engine.flush()
    wait_for(lambda: _logs(storage, "slow"), "the first call to start")
    _write(engine, storage, "cpu usage=1 2")
    engine.flush()  # the queue (of one) is now full
    writer = threading.Thread(target=_write, args=(engine, storage, "cpu usage=2 3"))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive()
    engine.set_disabled("db", "slow", True)
    writer.join(10)
    assert not writer.is_alive()
    gate.set()
    assert engine.wait_idle(10)
    engine.close()
    assert _logs(storage, "slow") == ["rows=1"]  # the queued flush was dropped with the trigger


OVERLAP_PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    barrier = influxdb3_local.cache.get("barrier", use_global=True)
    barrier.wait(int(args["wait_s"]))  # passes once `parties` calls are inside together
    influxdb3_local.info("met")
"""


def test_run_async_lets_calls_of_one_trigger_overlap(storage: Storage, tmp_path: Path) -> None:
    shared = GlobalCache()
    shared.put("barrier", threading.Barrier(3), None)
    engine = _engine(storage, tmp_path, OVERLAP_PLUGIN, global_cache=shared)
    engine.create_trigger(_trigger("overlap", "all_tables", {"wait_s": "20"}, run_async=True))
    for value in range(3):
        _write(engine, storage, f"cpu usage={value} {value + 1}")
        engine.flush()
    assert engine.wait_idle(30)
    engine.close()
    assert _logs(storage, "overlap") == ["met"] * 3


def test_without_run_async_calls_of_one_trigger_never_overlap(
    storage: Storage, tmp_path: Path
) -> None:
    shared = GlobalCache()
    shared.put("barrier", threading.Barrier(2), None)
    engine = _engine(storage, tmp_path, OVERLAP_PLUGIN, global_cache=shared)
    engine.create_trigger(_trigger("serial", "all_tables", {"wait_s": "1"}))
    for value in range(2):
        _write(engine, storage, f"cpu usage={value} {value + 1}")
        engine.flush()
    assert engine.wait_idle(30)
    engine.close()
    # the first call waited alone at the barrier until it broke: the second never joined it
    logs = _logs(storage, "serial")
    assert logs == ["error running process_writes: BrokenBarrierError: "] * 2


FLAKY_PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    attempts = influxdb3_local.cache.get("attempts", 0) + 1
    influxdb3_local.cache.put("attempts", attempts)
    value = table_batches[0]["rows"][0]["usage"]
    if attempts <= int(args["failures"]):
        raise RuntimeError(f"attempt {attempts} on {value} failed")
    influxdb3_local.info(f"attempt {attempts} on {value} succeeded")
    influxdb3_local.write(LineBuilder("done").float64_field("usage", value))
"""


def _flaky_engine(
    storage: Storage, tmp_path: Path, behavior: str, failures: int
) -> ProcessingEngine:
    engine = _engine(storage, tmp_path, FLAKY_PLUGIN, retry_pause_s=0.0)
    engine.create_trigger(
        _trigger("flaky", "table:cpu", {"failures": str(failures)}, error_behavior=behavior)
    )
    return engine


def test_error_behavior_log_logs_the_failure_and_takes_the_next_flush(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _flaky_engine(storage, tmp_path, "log", failures=1)
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    _write(engine, storage, "cpu usage=2 2")
    assert engine.wait_idle(10)
    engine.close()
    assert _logs(storage, "flaky") == [
        "error running process_writes: RuntimeError: attempt 1 on 1.0 failed",
        "attempt 2 on 2.0 succeeded",
    ]
    assert storage.query("db", "SELECT usage FROM done") == [{"usage": 2.0}]


def test_error_behavior_retry_runs_the_same_flush_again_until_it_succeeds(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _flaky_engine(storage, tmp_path, "retry", failures=3)
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    engine.close()
    # InfluxDB 3 says the retries in its own output only; the success is the plugin's line
    assert _logs(storage, "flaky") == ["attempt 4 on 1.0 succeeded"]
    assert storage.query("db", "SELECT usage FROM done") == [{"usage": 1.0}]


def test_error_behavior_disable_disables_the_trigger_after_a_failing_call(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _flaky_engine(storage, tmp_path, "disable", failures=1)
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    _write(engine, storage, "cpu usage=2 2")
    assert engine.wait_idle(10)
    assert [t.disabled for t in storage.triggers()] == [True]  # persisted
    engine.set_disabled("db", "flaky", False)
    _write(engine, storage, "cpu usage=3 3")
    assert engine.wait_idle(10)
    engine.close()
    assert _logs(storage, "flaky") == [
        "error running process_writes: RuntimeError: attempt 1 on 1.0 failed",
        "trigger disabled after a failing call (error_behavior=disable)",
        "attempt 2 on 3.0 succeeded",
    ]


def test_trigger_settings_are_stored_and_listed(storage: Storage, tmp_path: Path) -> None:
    engine = _engine(storage, tmp_path)
    engine.create_trigger(_trigger("plain", "all_tables"))
    engine.create_trigger(_trigger("fast", "table:cpu", run_async=True, error_behavior="retry"))
    with pytest.raises(EngineError, match="error_behavior must be one of log, retry, disable"):
        engine.create_trigger(_trigger("odd", "all_tables", error_behavior="ignore"))
    engine.close()
    rows = storage.query(
        "db",
        "SELECT trigger_name, error_behavior, run_async FROM system.processing_engine_triggers "
        "ORDER BY trigger_name",
    )
    assert rows == [
        {"trigger_name": "fast", "error_behavior": "retry", "run_async": True},
        {"trigger_name": "plain", "error_behavior": "log", "run_async": False},
    ]
    reloaded = ProcessingEngine(storage, tmp_path / "plugins")
    reloaded.load_saved_triggers()
    assert [(t.name, t.run_async, t.error_behavior) for t in storage.triggers()] == [
        ("plain", False, "log"),
        ("fast", True, "retry"),
    ]
    reloaded.close()


def test_a_package_plugin_is_imported_once_and_keeps_its_module_state(
    storage: Storage, tmp_path: Path
) -> None:
    package = tmp_path / "plugins" / "counting_pkg"
    package.mkdir(parents=True)
    (package / "helper.py").write_text("def label(n):\n    return f'call {n}'\n")
    (package / "__init__.py").write_text(
        "from .helper import label\n"
        "CALLS = []\n"
        "def process_writes(influxdb3_local, table_batches, args=None):\n"
        "    CALLS.append(1)\n"
        "    influxdb3_local.info(label(len(CALLS)))\n"
    )
    engine = ProcessingEngine(storage, tmp_path / "plugins")
    engine.create_trigger(
        TriggerDefinition("db", "pkg", "counting_pkg", "all_tables", {}, disabled=False)
    )
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    _write(engine, storage, "cpu usage=2 2")
    assert engine.wait_idle(10)
    engine.close()
    # module globals survive between calls, unlike a single-file plugin's
    assert _logs(storage, "pkg") == ["call 1", "call 2"]


BAD_WRITES_PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    influxdb3_local.write_to_db("no such/db", LineBuilder("x").int64_field("v", 1))
    influxdb3_local.write(LineBuilder("cpu").string_field("usage", "text now"))
    influxdb3_local.write(LineBuilder("ok").int64_field("v", 1))
"""


def test_a_calls_writes_to_a_database_are_all_or_nothing(storage: Storage, tmp_path: Path) -> None:
    engine = _engine(storage, tmp_path, BAD_WRITES_PLUGIN)
    engine.create_trigger(_trigger("writer", "table:cpu"))
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    engine.close()
    logs = _logs(storage, "writer")
    assert logs[0].startswith("plugin write to 'no such/db' failed:")
    # the string into the float column spoils the call's other line to 'db' as well
    assert logs[1].startswith(
        "plugin write to 'db' rejected: all 2 line(s) lost (accept_partial=false); line 1:"
    )
    assert len(logs) == 2
    assert "ok" not in [row["table_name"] for row in storage.query("db", "SHOW TABLES")]


def test_a_data_dir_from_before_trigger_settings_keeps_its_triggers(tmp_path: Path) -> None:
    old = Storage(tmp_path / "data")
    old.save_trigger(_trigger("kept", "all_tables", {"k": "v"}))
    old.close()
    # make the file look as it did before the trigger-settings columns existed
    conn = sqlite3.connect(next((tmp_path / "data").rglob("db.sqlite3")))
    conn.execute('DROP VIEW "system.processing_engine_triggers"')
    conn.execute("ALTER TABLE _mc_triggers DROP COLUMN run_async")
    conn.execute("ALTER TABLE _mc_triggers DROP COLUMN error_behavior")
    conn.commit()
    conn.close()
    reopened = Storage(tmp_path / "data")
    try:
        (trigger,) = reopened.triggers()
        assert (trigger.name, trigger.run_async, trigger.error_behavior) == ("kept", False, "log")
        assert reopened.query(
            "db", "SELECT error_behavior, run_async FROM system.processing_engine_triggers"
        ) == [{"error_behavior": "log", "run_async": False}]
    finally:
        reopened.close()
