"""The processing engine in-process: batching per flush, trigger specs, serialization, overflow."""

from __future__ import annotations

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


def test_slow_trigger_never_blocks_writers_and_drops_oldest_beyond_the_bound(
    storage: Storage, tmp_path: Path
) -> None:
    shared = GlobalCache()
    gate = threading.Event()
    shared.put("gate", gate, None)
    engine = _engine(storage, tmp_path, SLOW_PLUGIN, max_pending_rows=3, global_cache=shared)
    engine.create_trigger(_trigger("slow", "all_tables"))
    _write(engine, storage, "cpu usage=0 1")
    engine.flush()
    wait_for(lambda: _logs(storage, "slow") == ["rows=1"], "the first call to start")
    # the worker is now stuck in the plugin until the gate opens
    for value in range(1, 6):
        _write(engine, storage, f"cpu usage={value} {value + 1}")
        engine.flush()  # returns at once although the trigger is busy
    gate.set()
    assert engine.wait_idle(10)
    engine.close()
    logs = _logs(storage, "slow")
    assert logs[0] == "rows=1"
    assert sum("dropped the 1 oldest pending rows" in line for line in logs) == 2
    assert logs[-1] == "rows=3"


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


def test_bad_plugin_writes_are_logged_and_the_good_ones_applied(
    storage: Storage, tmp_path: Path
) -> None:
    engine = _engine(storage, tmp_path, BAD_WRITES_PLUGIN)
    engine.create_trigger(_trigger("writer", "table:cpu"))
    _write(engine, storage, "cpu usage=1 1")
    assert engine.wait_idle(10)
    _write(engine, storage, "cpu usage=2 2")
    assert engine.wait_idle(10)
    engine.close()
    logs = _logs(storage, "writer")
    assert len(logs) == 4  # two calls, each with two rejected writes
    assert logs[0].startswith("plugin write to 'no such/db' failed:")
    assert logs[1].startswith("plugin write to 'db' rejected line 1:")
    assert storage.query("db", "SELECT v FROM ok") == [{"v": 1}, {"v": 1}]  # one per call
