"""Storage: what a user of the local engine sees when writing, querying and restarting."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from madcheck.engine import storage as storage_module
from madcheck.engine.api import LogRecord
from madcheck.engine.storage import (
    INTERNAL_DATABASE,
    Column,
    InvalidRequestError,
    QueryError,
    Storage,
    StorageError,
    TriggerDefinition,
    TriggerExistsError,
)

NOW = 1_764_446_400_000_000_000  # 2025-11-29T20:00:00Z
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def storage(tmp_path: Path):
    store = Storage(tmp_path, clock_ns=lambda: NOW)
    yield store
    store.close()


def write_ok(storage: Storage, body: str, database: str = "db", **options):
    result = storage.write_lp(database, body, **options)
    assert result.errors == []
    return result


# -- writes and schema -----------------------------------------------------------------------------


def test_write_returns_engine_rows_in_input_order(storage):
    result = write_ok(
        storage,
        "cpu,host=a usage=1.5 1764446400\nmem,host=b free=2i\ncpu,host=b usage=3 1764446401",
    )
    assert result.rows == [
        ("cpu", {"host": "a", "usage": 1.5, "time": NOW}),
        ("mem", {"host": "b", "free": 2, "time": NOW}),
        ("cpu", {"host": "b", "usage": 3.0, "time": NOW + 10**9}),
    ]


def test_first_write_creates_tables_and_fixes_column_types(storage):
    write_ok(storage, 'cpu,host=a f=1,i=2i,u=3u,b=t,s="x" 1764446400')
    assert storage.tables("db") == ["cpu"]
    assert storage.columns("db", "cpu") == [
        Column("b", "field", "Boolean"),
        Column("f", "field", "Float64"),
        Column("host", "tag", "Dictionary(Int32, Utf8)"),
        Column("i", "field", "Int64"),
        Column("s", "field", "Utf8"),
        Column("time", "time", "Timestamp(Nanosecond, None)"),
        Column("u", "field", "UInt64"),
    ]


def test_conflicting_field_type_is_a_line_error_and_other_lines_are_kept(storage):
    write_ok(storage, "cpu usage=1.5 1")
    result = storage.write_lp("db", "cpu usage=2.5 2\ncpu usage=3i 3\ncpu usage=4 4")
    assert [e.line_number for e in result.errors] == [2]
    assert result.errors[0].original_line == "cpu usage=3i 3"
    assert "Float64" in result.errors[0].error_message
    assert "Int64" in result.errors[0].error_message
    values = [r["usage"] for r in storage.query("db", "SELECT usage FROM cpu ORDER BY time")]
    assert values == [1.5, 2.5, 4.0]


def test_tag_written_as_field_is_a_line_error(storage):
    write_ok(storage, "cpu,host=a v=1 1")
    result = storage.write_lp("db", 'cpu host="a",v=2 2')
    assert len(result.errors) == 1
    assert "'host' is a tag" in result.errors[0].error_message


def test_conflict_within_one_write_is_caught(storage):
    result = storage.write_lp("db", "new v=1i 1\nnew v=2 2")
    assert [e.line_number for e in result.errors] == [2]
    assert storage.columns("db", "new")[1] == Column("v", "field", "Int64")


def test_partial_write_keeps_valid_lines_and_reports_parse_errors(storage):
    result = storage.write_lp("db", "cpu v=1 1\ncpu v=\ncpu v=3 3")
    assert [e.line_number for e in result.errors] == [2]
    assert [t for t, _ in result.rows] == ["cpu", "cpu"]
    assert len(storage.query("db", "SELECT * FROM cpu")) == 2


def test_accept_partial_false_stores_nothing_if_any_line_fails(storage):
    result = storage.write_lp("db", "cpu v=1 1\ncpu v=oops\nmem v=3 3", accept_partial=False)
    assert result.rows == []
    assert [e.line_number for e in result.errors] == [2]
    assert storage.tables("db") == []


def test_same_series_and_time_overwrites_only_the_fields_written(storage):
    write_ok(storage, "cpu,host=a usage=1,temp=50 1764446400")
    write_ok(storage, "cpu,host=a usage=2 1764446400")
    assert storage.query("db", "SELECT * FROM cpu") == [
        {"host": "a", "temp": 50.0, "time": "2025-11-29T20:00:00", "usage": 2.0}
    ]


def test_a_missing_tag_makes_a_different_series(storage):
    write_ok(storage, "cpu,host=a usage=1 1764446400\ncpu usage=2 1764446400")
    rows = storage.query("db", "SELECT host, usage FROM cpu ORDER BY usage")
    assert rows == [{"host": "a", "usage": 1.0}, {"host": None, "usage": 2.0}]


def test_the_last_of_repeated_lines_in_one_write_wins(storage):
    write_ok(storage, "cpu v=1 1\ncpu v=2,w=5 1\ncpu v=3 1")
    assert storage.query("db", "SELECT v, w FROM cpu") == [{"v": 3.0, "w": 5.0}]


def test_new_tags_and_fields_extend_the_table(storage):
    write_ok(storage, "cpu,host=a v=1 1")
    write_ok(storage, "cpu,host=a,dc=x v=2,extra=t 2")
    names = [c.name for c in storage.columns("db", "cpu")]
    assert names == ["dc", "extra", "host", "time", "v"]
    rows = storage.query("db", "SELECT * FROM cpu ORDER BY time")
    assert rows[0] == {
        "dc": None,
        "extra": None,
        "host": "a",
        "time": "1970-01-01T00:00:01",
        "v": 1.0,
    }


def test_names_only_differing_in_case_are_rejected_clearly(storage):
    write_ok(storage, "cpu,Host=a v=1 1")
    result = storage.write_lp("db", "CPU v=1 1\ncpu,host=b v=1 1")
    messages = [e.error_message for e in result.errors]
    assert "differs from existing table 'cpu' only in letter case" in messages[0]
    assert "differs from existing column 'Host'" in messages[1]


def test_reserved_names_are_rejected(storage):
    result = storage.write_lp("db", "_mc_columns v=1 1\nsystem.processing_engine_logs v=1 1")
    assert len(result.errors) == 2
    assert all("reserved" in e.error_message for e in result.errors)


def test_unsigned_values_beyond_int64_round_trip(storage):
    write_ok(storage, "big u=18446744073709551615u 1\nbig u=7u 2")
    assert [r["u"] for r in storage.query("db", "SELECT u FROM big ORDER BY time")] == [
        2**64 - 1,
        7,
    ]


def test_invalid_database_name_and_precision_are_rejected(storage):
    with pytest.raises(InvalidRequestError, match="invalid database name"):
        storage.write_lp("bad name", "cpu v=1")
    with pytest.raises(InvalidRequestError, match="invalid precision"):
        storage.write_lp("db", "cpu v=1", precision="fortnight")


def test_precision_applies_to_stored_time(storage):
    write_ok(storage, "cpu v=1 1764446400500", precision="ms")
    assert storage.query("db", "SELECT time FROM cpu") == [{"time": "2025-11-29T20:00:00.500"}]


def test_missing_timestamp_uses_the_storage_clock(storage):
    write_ok(storage, "cpu v=1")
    assert storage.query("db", "SELECT time FROM cpu") == [{"time": "2025-11-29T20:00:00"}]


# -- queries ---------------------------------------------------------------------------------------


@pytest.fixture
def loaded(storage):
    write_ok(
        storage,
        "\n".join(
            [
                "cpu,host=a usage=10 1764442800",  # 19:00
                "cpu,host=a usage=20 1764446000",  # 19:53:20
                "cpu,host=b usage=30 1764446100",
                "cpu,host=b usage=40 1764446400",  # 20:00
            ]
        ),
    )
    return storage


def test_time_is_shown_as_rfc3339(loaded):
    rows = loaded.query("db", "SELECT time, usage FROM cpu ORDER BY time LIMIT 1")
    assert rows == [{"time": "2025-11-29T19:00:00", "usage": 10.0}]


def test_where_time_compares_with_rfc3339_literals(loaded):
    rows = loaded.query(
        "db", "SELECT usage FROM cpu WHERE time >= '2025-11-29T19:55:00Z' ORDER BY time"
    )
    assert [r["usage"] for r in rows] == [30.0, 40.0]
    rows = loaded.query(
        "db",
        "SELECT usage FROM cpu WHERE time BETWEEN '2025-11-29T19:30:00Z' "
        "AND '2025-11-29T20:55:00+01:00' ORDER BY time",
    )
    assert [r["usage"] for r in rows] == [20.0, 30.0]


def test_now_minus_interval(loaded):
    rows = loaded.query(
        "db", "SELECT count(*) AS n FROM cpu WHERE time > now() - INTERVAL '10 minutes'"
    )
    assert rows == [{"n": 3}]


def test_parameters_bind_by_name_including_times(loaded):
    rows = loaded.query(
        "db",
        "SELECT usage FROM cpu WHERE host = $host AND time > $since ORDER BY time",
        {"host": "b", "since": "2025-11-29T19:58:00Z"},
    )
    assert rows == [{"usage": 40.0}]


def test_group_by_aggregates_and_ordering(loaded):
    rows = loaded.query(
        "db",
        'SELECT "host", avg(usage) AS mean, max(time) AS last FROM cpu GROUP BY host '
        "ORDER BY mean DESC",
    )
    assert rows == [
        {"host": "b", "mean": 35.0, "last": 1764446400000000000},
        {"host": "a", "mean": 15.0, "last": 1764446000000000000},
    ]
    assert loaded.query("db", "SELECT max(time) FROM cpu") == [{"max(time)": "2025-11-29T20:00:00"}]


def test_date_bin_buckets_times(loaded):
    rows = loaded.query(
        "db",
        "SELECT date_bin(INTERVAL '1 hour', time) AS time, count(*) AS n FROM cpu "
        "GROUP BY 1 ORDER BY 1",
    )
    assert rows == [
        {"time": "2025-11-29T19:00:00", "n": 3},
        {"time": "2025-11-29T20:00:00", "n": 1},
    ]


def test_show_tables(loaded):
    rows = loaded.query("db", "SHOW TABLES")
    assert {"table_catalog": "public", "table_schema": "iox", "table_name": "cpu",
            "table_type": "BASE TABLE"} in rows  # fmt: skip
    system = {r["table_name"] for r in rows if r["table_schema"] == "system"}
    assert {"processing_engine_logs", "processing_engine_triggers"} <= system
    assert {r["table_name"] for r in rows if r["table_schema"] == "information_schema"} == {
        "columns",
        "tables",
    }


def test_information_schema_columns_uses_influxdb_type_names(storage):
    write_ok(storage, 'home,room=k temp=21.5,hum=40i,lux=3u,on=t,note="x" 1')
    rows = storage.query(
        "db",
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'iox' AND table_name = $t",
        {"t": "home"},
    )
    assert rows == [
        {"column_name": "hum", "data_type": "Int64", "is_nullable": "YES"},
        {"column_name": "lux", "data_type": "UInt64", "is_nullable": "YES"},
        {"column_name": "note", "data_type": "Utf8", "is_nullable": "YES"},
        {"column_name": "on", "data_type": "Boolean", "is_nullable": "YES"},
        {"column_name": "room", "data_type": "Dictionary(Int32, Utf8)", "is_nullable": "YES"},
        {"column_name": "temp", "data_type": "Float64", "is_nullable": "YES"},
        {"column_name": "time", "data_type": "Timestamp(Nanosecond, None)", "is_nullable": "NO"},
    ]


def test_show_columns(loaded):
    rows = loaded.query("db", "SHOW COLUMNS FROM cpu")
    assert [(r["column_name"], r["data_type"]) for r in rows] == [
        ("host", "Dictionary(Int32, Utf8)"),
        ("time", "Timestamp(Nanosecond, None)"),
        ("usage", "Float64"),
    ]


def test_quoted_identifiers_with_special_characters(storage):
    write_ok(storage, r"my\ table,the\ host=a my\ field=1 1")
    rows = storage.query("db", 'SELECT "the host", "my field" FROM "my table"')
    assert rows == [{"the host": "a", "my field": 1.0}]


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * FROM nope", "table 'nope' not found in database 'db' (tables: cpu)"),
        ("SELECT nope FROM cpu", "column 'nope' not found"),
        ("SELEC * FROM cpu", "unsupported statement 'SELEC'"),
        ("SELECT * FROM cpu WHERE", "error in SQL"),
        ("DELETE FROM cpu", "unsupported statement 'DELETE'"),
        ("SELECT 1; DROP TABLE cpu", "error in SQL"),
        ("SELECT * FROM cpu WHERE host = $host", "no value given for query parameter $host"),
        ("SELECT * FROM cpu WHERE time > 'yesterday'", "cannot compare time with 'yesterday'"),
        ("SELECT * FROM system.nothing", "system.processing_engine_logs"),
        ("SELECT * FROM cpu WHERE time > now() - INTERVAL '1 month'", "months and years"),
        ("", "empty query"),
    ],
)
def test_bad_queries_raise_query_errors_a_person_can_act_on(loaded, sql, fragment):
    with pytest.raises(QueryError) as caught:
        loaded.query("db", sql)
    assert fragment in str(caught.value)
    assert len(loaded.query("db", "SELECT * FROM cpu")) == 4


def test_unknown_database_is_a_query_error(storage):
    with pytest.raises(QueryError, match="database 'nope' not found"):
        storage.query("nope", "SELECT 1")


# -- logs and triggers -----------------------------------------------------------------------------


def test_logs_land_in_the_database_and_in_internal(storage):
    storage.append_logs(
        "db",
        [
            LogRecord(NOW, "mad", "INFO", "started"),
            LogRecord(NOW + 1_000_000, "mad", "ERROR", "boom"),
        ],
    )
    expected = [
        {"event_time": "2025-11-29T20:00:00", "trigger_name": "mad", "log_level": "INFO",
         "log_text": "started"},
        {"event_time": "2025-11-29T20:00:00.001", "trigger_name": "mad", "log_level": "ERROR",
         "log_text": "boom"},
    ]  # fmt: skip
    sql = "SELECT * FROM system.processing_engine_logs ORDER BY event_time"
    assert storage.query("db", sql) == expected
    assert storage.query(INTERNAL_DATABASE, sql) == expected
    errors = storage.query(
        "db", "SELECT log_text FROM system.processing_engine_logs WHERE log_level = 'ERROR'"
    )
    assert errors == [{"log_text": "boom"}]


def test_triggers_are_listed_in_system_tables(storage):
    storage.save_trigger(
        TriggerDefinition(
            "db", "mad", "mad_check_plugin.py", "all_tables", {"k": "2.5", "x": "a=b"}
        )
    )
    storage.save_trigger(TriggerDefinition("db", "notify", "notifier_plugin.py", "request:notify"))
    storage.set_trigger_disabled("db", "notify", True)
    rows = storage.query("db", "SELECT * FROM system.processing_engine_triggers ORDER BY 1")
    assert rows == [
        {"trigger_name": "mad", "plugin_filename": "mad_check_plugin.py",
         "trigger_specification": "all_tables", "disabled": False,
         "error_behavior": "log", "run_async": False},
        {"trigger_name": "notify", "plugin_filename": "notifier_plugin.py",
         "trigger_specification": "request:notify", "disabled": True,
         "error_behavior": "log", "run_async": False},
    ]  # fmt: skip
    arguments = storage.query(
        "db", "SELECT argument_key, argument_value FROM system.processing_engine_trigger_arguments"
    )
    assert sorted(map(tuple, (r.values() for r in arguments))) == [("k", "2.5"), ("x", "a=b")]


def test_trigger_names_are_unique_per_database(storage):
    storage.save_trigger(TriggerDefinition("db", "t", "a.py", "all_tables"))
    with pytest.raises(TriggerExistsError, match="trigger 't' already exists in database 'db'"):
        storage.save_trigger(TriggerDefinition("db", "t", "b.py", "all_tables"))
    storage.save_trigger(TriggerDefinition("other", "t", "b.py", "all_tables"))
    assert [(t.database, t.plugin_filename) for t in storage.triggers()] == [
        ("db", "a.py"),
        ("other", "b.py"),
    ]


def test_delete_and_disable_report_whether_the_trigger_existed(storage):
    storage.save_trigger(TriggerDefinition("db", "t", "a.py", "all_tables"))
    assert storage.set_trigger_disabled("db", "t", True) is True
    assert storage.triggers("db")[0].disabled is True
    assert storage.set_trigger_disabled("db", "missing", True) is False
    assert storage.delete_trigger("db", "t") is True
    assert storage.delete_trigger("db", "t") is False
    assert storage.delete_trigger("nodb", "t") is False
    assert storage.triggers("db") == []


# -- persistence and concurrency -------------------------------------------------------------------


def test_data_schema_logs_and_triggers_survive_a_restart(tmp_path):
    with Storage(tmp_path, clock_ns=lambda: NOW) as first:
        first.write_lp("db", "cpu,host=a v=1i 1764446400")
        first.append_logs("db", [LogRecord(NOW, "mad", "WARN", "careful")])
        first.save_trigger(
            TriggerDefinition("db", "mad", "mad.py", "table:cpu", {"window_count": "20"}, True)
        )
    with Storage(tmp_path) as second:
        assert second.databases() == [INTERNAL_DATABASE, "db"]
        assert second.query("db", "SELECT * FROM cpu") == [
            {"host": "a", "time": "2025-11-29T20:00:00", "v": 1}
        ]
        assert second.triggers() == [
            TriggerDefinition("db", "mad", "mad.py", "table:cpu", {"window_count": "20"}, True)
        ]
        logs = second.query(INTERNAL_DATABASE, "SELECT log_text FROM system.processing_engine_logs")
        assert logs == [{"log_text": "careful"}]
        result = second.write_lp("db", "cpu,host=a v=1.5 1764446401")
        assert "Int64" in result.errors[0].error_message


def test_an_acknowledged_write_survives_the_process_being_killed(tmp_path):
    script = (
        "import os, sys\n"
        "from madcheck.engine.storage import Storage\n"
        "store = Storage(sys.argv[1])\n"
        "result = store.write_lp('db', 'cpu v=42 1764446400')\n"
        "assert not result.errors\n"
        "os._exit(0)  # no close, no checkpoint: as abrupt as SIGKILL\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=True, timeout=60)
    with Storage(tmp_path) as reopened:
        assert reopened.query("db", "SELECT v FROM cpu") == [{"v": 42.0}]


def test_concurrent_writers_and_readers_lose_nothing(storage):
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for batch in range(20):
                body = "\n".join(
                    f"cpu,worker=w{worker} v={batch * 10 + i} {batch * 10 + i + 1}"
                    for i in range(10)
                )
                assert storage.write_lp("db", body).errors == []
                storage.query("db", "SELECT count(*) FROM cpu")
                storage.append_logs("db", [LogRecord(NOW, f"w{worker}", "INFO", str(batch))])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = storage.query("db", "SELECT worker, count(*) AS n FROM cpu GROUP BY worker")
    assert sorted((r["worker"], r["n"]) for r in counts) == [(f"w{n}", 200) for n in range(4)]
    logs = storage.query(
        INTERNAL_DATABASE, "SELECT count(*) AS n FROM system.processing_engine_logs"
    )
    assert logs == [{"n": 80}]


def test_closed_storage_refuses_work(tmp_path):
    store = Storage(tmp_path)
    store.close()
    with pytest.raises(Exception, match="storage is closed"):
        store.write_lp("db", "cpu v=1")


def test_after_close_the_database_file_alone_is_a_complete_copy(tmp_path):
    with Storage(tmp_path / "a") as store:
        store.write_lp("db", "cpu v=1 1")
    copy = tmp_path / "b" / "databases"
    copy.mkdir(parents=True)
    (copy / "db.sqlite3").write_bytes((tmp_path / "a" / "databases" / "db.sqlite3").read_bytes())
    with Storage(tmp_path / "b") as reopened:
        assert reopened.query("db", "SELECT v FROM cpu") == [{"v": 1.0}]


def test_an_unreadable_database_file_is_reported_with_its_path(tmp_path):
    directory = tmp_path / "databases"
    directory.mkdir()
    (directory / "broken.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"cannot open database file .*broken\.sqlite3"):
        Storage(tmp_path)


def test_tables_are_limited_to_500_columns_like_influxdb(storage):
    wide = ",".join(f"f{i}=1" for i in range(498))
    write_ok(storage, f"wide,host=a {wide} 1")  # 498 fields + 1 tag + time = 500
    result = storage.write_lp("db", "wide,host=a one_more=1 2\nwide,host=a f0=2 3")
    assert [e.line_number for e in result.errors] == [1]
    assert "more than 500 columns" in result.errors[0].error_message
    assert len(storage.columns("db", "wide")) == 500


def test_only_the_newest_log_rows_are_kept(tmp_path):
    with Storage(tmp_path, max_log_rows=3) as store:
        for batch in range(3):
            store.append_logs(
                "db",
                [LogRecord(NOW + batch * 2 + i, "t", "INFO", f"{batch}.{i}") for i in range(2)],
            )
        sql = "SELECT log_text FROM system.processing_engine_logs ORDER BY event_time"
        expected = [{"log_text": text} for text in ("1.1", "2.0", "2.1")]
        assert store.query("db", sql) == expected
        assert store.query(INTERNAL_DATABASE, sql) == expected


def test_a_runaway_query_is_stopped_and_the_database_stays_usable(tmp_path):
    with Storage(tmp_path, query_timeout_s=0.0) as store:
        store.write_lp("db", "cpu v=1 1")
        endless = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        )
        with pytest.raises(QueryError, match="query stopped after 0 s"):
            store.query("db", endless)
        assert store.write_lp("db", "cpu v=2 2").errors == []
    with Storage(tmp_path) as reopened:
        assert len(reopened.query("db", "SELECT * FROM cpu")) == 2


def test_queries_are_answered_while_a_write_transaction_is_open(storage, tmp_path):
    write_ok(storage, "cpu v=1 1")
    other_writer = sqlite3.connect(tmp_path / "databases" / "db.sqlite3", isolation_level=None)
    try:
        # Without WAL an exclusive writer would lock readers out ("database is locked").
        other_writer.execute("BEGIN EXCLUSIVE")
        assert storage.query("db", "SELECT v FROM cpu") == [{"v": 1.0}]
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()


def test_a_slow_query_holds_up_neither_writes_nor_other_queries(tmp_path, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    waited: list[bool] = []

    def block_until_released() -> int:
        entered.set()
        waited.append(release.wait(timeout=30))  # False only if the others were held up
        return 1

    connect_reader = storage_module._Database._connect_reader

    def reader_with_blocker(self: Any) -> sqlite3.Connection:
        conn = connect_reader(self)
        conn.create_function("block_until_released", 0, block_until_released)
        return conn

    monkeypatch.setattr(storage_module._Database, "_connect_reader", reader_with_blocker)
    with Storage(tmp_path) as storage:
        write_ok(storage, "cpu v=1 1")
        query = threading.Thread(target=storage.query, args=("db", "SELECT block_until_released()"))
        query.start()
        try:
            assert entered.wait(timeout=30)
            # while that query is still running:
            write_ok(storage, "cpu v=2 2")
            assert storage.query("db", "SELECT count(*) AS n FROM cpu") == [{"n": 2}]
        finally:
            release.set()
            query.join()
    assert waited == [True]
