"""Warm start: after a restart, windows refill from the table and detection resumes at once."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madcheck.detect.alerts import rfc3339
from madcheck.engine.cache import TriggerCache
from madcheck.plugin.warmstart import parse_time_ns
from tests.stored_history import make_engine_with_history as make_engine
from tests.support import receiver, rows, run_and_settle, wait_until

BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]
START_S = 1_700_000_000


def args_for(port, **extra):
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "senders": "slack",
        "slack_webhook_url": "https://hooks.slack.test/services/T000/B000/WARMSECRET",
        "port_override": str(port),
        "notification_attempts": "1",
        **extra,
    }


def restarted_engine(stored_values, start_s=START_S, **stored_tags):
    """An engine whose table already holds ``stored_values`` (one per 10 s) and whose cache is
    empty, as after a server restart."""
    engine = make_engine(cache=TriggerCache())
    engine.query_handler.stored["cpu"] = rows(
        "cpu", stored_values, start_s=start_s, **(stored_tags or {"host": "a"})
    )["rows"]
    return engine


def history_queries(engine):
    return [q for q in engine.query_handler.calls if q.startswith("SELECT") and "$since" in q]


@pytest.mark.parametrize("time_as_text", [False, True], ids=["time-as-int", "time-as-rfc3339"])
def test_detection_resumes_on_the_first_points_after_a_restart(time_as_text):
    engine = restarted_engine(BASE)
    engine.query_handler.time_as_text = time_as_text
    after = START_S + 10 * len(BASE)
    with receiver() as notifier:
        run_and_settle(
            engine, [rows("cpu", [100, 100], start_s=after, host="a")], args_for(notifier.port)
        )
        assert len(notifier.requests) == 1  # two outliers, count 2: the alert fires at once
    assert any("warm start: 1 new series of cpu, 9 value(s)" in i for i in engine.log_texts("INFO"))


def test_without_warm_start_the_window_must_fill_first():
    engine = restarted_engine(BASE)
    after = START_S + 10 * len(BASE)
    with receiver() as notifier:
        args = args_for(notifier.port, warm_start="false")
        run_and_settle(engine, [rows("cpu", [100, 100], start_s=after, host="a")], args)
        assert notifier.requests == []
    assert history_queries(engine) == []


def test_rows_of_the_batch_already_in_the_table_are_not_counted_twice():
    # the table shows the batch's own two points too, as InfluxDB does once the WAL is flushed
    engine = restarted_engine([*BASE, 100, 100])
    after = START_S + 10 * len(BASE)
    with receiver() as notifier:
        run_and_settle(
            engine, [rows("cpu", [100, 100], start_s=after, host="a")], args_for(notifier.port)
        )
        assert len(notifier.requests) == 1
    assert any("9 value(s) from 9 stored row(s)" in i for i in engine.log_texts("INFO"))


def test_one_query_per_call_for_all_new_series_and_none_once_they_are_known():
    engine = make_engine(cache=TriggerCache())
    stored = []
    for host in "abc":
        stored += rows("cpu", BASE, host=host)["rows"]
    engine.query_handler.stored["cpu"] = stored
    after = START_S + 10 * len(BASE)
    batch = [
        {
            "table_name": "cpu",
            "rows": [r for h in "abc" for r in rows("cpu", [11], start_s=after, host=h)["rows"]],
        }
    ]
    run_and_settle(engine, batch, args_for(1))
    assert len(history_queries(engine)) == 1
    assert any("3 new series of cpu, 27 value(s)" in i for i in engine.log_texts("INFO"))
    run_and_settle(engine, batch, args_for(1))
    assert len(history_queries(engine)) == 1
    # a series never seen before brings one more query, only for the call that brings it
    run_and_settle(engine, [rows("cpu", [11], start_s=after + 10, host="d")], args_for(1))
    assert len(history_queries(engine)) == 2


def test_history_older_than_the_lookback_is_not_used():
    engine = restarted_engine(BASE)  # points 0..80 s after START_S
    after = START_S + 10 * len(BASE)
    args = args_for(1, warm_start_lookback="45s")  # reaches back to START_S + 45 s
    run_and_settle(engine, [rows("cpu", [11], start_s=after, host="a")], args)
    assert any("4 value(s) from 4 stored row(s)" in i for i in engine.log_texts("INFO"))


def test_the_row_limit_keeps_the_most_recent_history():
    engine = restarted_engine(BASE)
    after = START_S + 10 * len(BASE)
    run_and_settle(
        engine, [rows("cpu", [11], start_s=after, host="a")], args_for(1, warm_start_max_rows="3")
    )
    (query,) = history_queries(engine)
    assert query.endswith("LIMIT 3")
    assert any("3 value(s) from 3 stored row(s)" in i for i in engine.log_texts("INFO"))


def test_a_failing_history_query_is_a_warning_and_detection_goes_on_cold():
    engine = make_engine()

    def busy(match, params):
        raise RuntimeError("query timed out (database: mydb)")

    engine.query_handler.history = busy
    batch = [rows("cpu", [*BASE, 100, 100], host="a")]
    with receiver() as notifier:
        run_and_settle(engine, batch, args_for(notifier.port))
        assert len(notifier.requests) == 1
    (warning,) = [w for w in engine.log_texts("WARN") if "warm start" in w]
    assert "history query failed (RuntimeError: query timed out (database: mydb))" in warning
    assert not engine.log_texts("ERROR")


def test_no_history_query_for_a_table_without_the_monitored_field():
    engine = make_engine({"cpu": {"tags": ["host"], "fields": ["load"]}})
    run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(1))
    assert history_queries(engine) == []


def test_unreadable_history_rows_are_counted_once():
    engine = restarted_engine(BASE)
    engine.query_handler.stored["cpu"] += [
        {"host": "a", "temp": "warm", "time": (START_S + 1) * 10**9},
        {"host": "a", "temp": None, "time": (START_S + 2) * 10**9},
    ]
    original = engine.query_handler.history

    def with_bad_times(match, params):
        answer = original(match, params)
        return [*answer, {"host": "a", "temp": 1.0, "time": "yesterday"}, "junk"]

    engine.query_handler.history = with_bad_times
    after = START_S + 10 * len(BASE)
    run_and_settle(engine, [rows("cpu", [11], start_s=after, host="a")], args_for(1))
    (info,) = [i for i in engine.log_texts("INFO") if "warm start" in i]
    assert "9 value(s) from 11 stored row(s)" in info and "2 unreadable row(s)" in info


def test_series_are_told_apart_by_their_tags():
    engine = restarted_engine([50] * 9, host="b")  # only another host has history
    after = START_S + 10 * len(BASE)
    run_and_settle(engine, [rows("cpu", [11], start_s=after, host="a")], args_for(1))
    assert any("0 value(s) from 0 stored row(s)" in i for i in engine.log_texts("INFO"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000 * 10**9),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000 * 10**9 + 500_000_000),
        ("2023-11-14T22:13:20.000000001Z", 1_700_000_000 * 10**9 + 1),
        ("2023-11-14 22:13:20", 1_700_000_000 * 10**9),  # no zone: UTC, as InfluxDB shows it
        ("2023-11-14T23:13:20+01:00", 1_700_000_000 * 10**9),
        ("2023-11-14T21:13:20-0100", 1_700_000_000 * 10**9),
        (1_700_000_000 * 10**9, 1_700_000_000 * 10**9),
        ("2023-13-14T22:13:20Z", None),
        ("yesterday", None),
        (None, None),
        (1.5, None),
        (True, None),
    ],
)
def test_time_values_as_engines_return_them(text, expected):
    assert parse_time_ns(text) == expected


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_rfc3339_times_read_back_exactly(time_ns):
    assert parse_time_ns(rfc3339(time_ns)) == time_ns


def test_a_few_new_series_are_named_so_other_series_do_not_crowd_them_out():
    engine = restarted_engine(BASE, host="a")
    # another host wrote a lot more recently: without naming "a", the limit would go to "b"
    engine.query_handler.stored["cpu"] += rows("cpu", [50] * 30, start_s=START_S + 1, host="b")[
        "rows"
    ]
    after = START_S + 10 * len(BASE)
    args = args_for(1, warm_start_max_rows="9")
    run_and_settle(engine, [rows("cpu", [11], start_s=after, host="a")], args)
    (query,) = history_queries(engine)
    assert '("host" = $s0t0)' in query
    assert any("9 value(s) from 9 stored row(s)" in i for i in engine.log_texts("INFO"))


def test_many_new_series_are_read_in_one_unfiltered_query():
    engine = make_engine(cache=TriggerCache())
    after = START_S + 10 * len(BASE)
    hosts = [f"h{i}" for i in range(17)]
    batch = [r for h in hosts for r in rows("cpu", [11], start_s=after, host=h)["rows"]]
    run_and_settle(engine, [{"table_name": "cpu", "rows": batch}], args_for(1))
    (query,) = history_queries(engine)
    assert " OR " not in query and "$s0t0" not in query


# -- against the local engine: its SQL, its storage, a real restart ---------------------------


def _local_engine(storage, plugins):
    from madcheck.engine.processing import ProcessingEngine

    return ProcessingEngine(storage, plugins)


def _lines(values, start_s, host="a"):
    return "\n".join(
        f"cpu,host={host} temp={float(v)} {(start_s + 10 * i) * 10**9}"
        for i, v in enumerate(values)
    )


@pytest.mark.parametrize("warm", [True, False], ids=["warm-start", "cold-start"])
def test_a_restart_of_the_local_engine_keeps_detecting(tmp_path, warm):
    import shutil

    from madcheck.engine.storage import Storage, TriggerDefinition
    from tests.support import MAD_PLUGIN

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(MAD_PLUGIN, plugins / "mad_check_plugin.py")
    storage = Storage(tmp_path / "data")
    with receiver() as notifier:
        args = args_for(notifier.port, warm_start=str(warm).lower(), alerts_table="")
        engine = _local_engine(storage, plugins)
        engine.create_trigger(
            TriggerDefinition("db", "mad", "mad_check_plugin.py", "table:cpu", args)
        )
        engine.record_writes("db", storage.write_lp("db", _lines(BASE, START_S), "ns").rows)
        assert engine.wait_idle(10)
        engine.close()
        # the server restarts: triggers come back from storage, caches are empty
        engine = _local_engine(storage, plugins)
        engine.load_saved_triggers()
        after = START_S + 10 * len(BASE)
        engine.record_writes("db", storage.write_lp("db", _lines([100, 100], after), "ns").rows)
        assert engine.wait_idle(10)
        if warm:  # the alert is posted by the trigger's background sender
            assert wait_until(lambda: notifier.requests)
        engine.close()
        sent = len(notifier.requests)
    logs = [
        row["log_text"]
        for row in storage.query("db", "SELECT log_text FROM system.processing_engine_logs")
    ]
    storage.close()
    assert not [line for line in logs if "warm start" in line and "failed" in line]
    if warm:
        assert sent == 1
        assert any(
            "warm start: 1 new series of cpu, 9 value(s) from 9 stored row(s)" in line
            for line in logs
        )
    else:
        assert sent == 0


def test_the_local_engine_answers_the_named_series_query(tmp_path):
    from madcheck.engine.api import EngineAPI
    from madcheck.engine.processing import group_table_batches
    from madcheck.engine.storage import Storage

    storage = Storage(tmp_path / "data")
    storage.write_lp("db", _lines(BASE, START_S, host="a"), "ns")
    storage.write_lp("db", _lines([50] * 30, START_S + 1, host="b"), "ns")
    storage.write_lp("db", "cpu temp=70 " + str((START_S + 5) * 10**9), "ns")  # no host at all
    engine = EngineAPI(
        database="db",
        query_handler=lambda sql, params, db: storage.query(db, sql, params),
        cache=TriggerCache(),
    )
    after = START_S + 10 * len(BASE)
    written = storage.write_lp(
        "db", _lines([11], after, host="a") + "\ncpu temp=71 " + str(after * 10**9), "ns"
    )
    args = args_for(1, warm_start_max_rows="12", alerts_table="")
    run_and_settle(engine, group_table_batches(written.rows), args)
    storage.close()
    (info,) = [i for i in engine.log_texts("INFO") if "warm start" in i]
    # host "a" gets its 9 rows, the untagged series its 1; "b" is not read
    assert "2 new series of cpu, 10 value(s) from 10 stored row(s)" in info
    assert not [w for w in engine.log_texts("WARN") if "warm start" in w]
