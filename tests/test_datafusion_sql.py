"""The SQL the plugins send runs on InfluxDB 3's SQL engine, Apache DataFusion (issue 12).

The real MAD plugin runs against :class:`DataFusionQueries`: tables typed as InfluxDB 3 types
them, results converted as its ``influxdb3_local.query`` converts them. Every SQL string the
plugin sends must run there, and the verdicts that follow must be those of the local engine.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.plugin.schema import fetch_schema, fetch_tables
from tests.datafusion_engine import DataFusionQueries, UnsupportedType
from tests.support import free_port, run_mad_plugin

BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]  # median 11, MAD 1
START_NS = 1_700_000_000 * 10**9
STEP_NS = 10 * 10**9


def _stored(queries: DataFusionQueries, series: str, values: list[float], start: int = 0) -> None:
    queries.write_lp(
        "\n".join(
            f"cpu,{series} temp={value},load=1i {START_NS + (start + i) * STEP_NS}"
            for i, value in enumerate(values)
        )
    )


def _batch(series: dict[str, str], values: list[float], start: int) -> dict:
    return {
        "table_name": "cpu",
        "rows": [
            {**series, "temp": float(v), "load": 1, "time": START_NS + (start + i) * STEP_NS}
            for i, v in enumerate(values)
        ],
    }


def _args(**extra: str) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:1",  # one outlier is enough: an alert at the first
        "senders": "http",
        "http_webhook_url": f"http://127.0.0.1:{free_port()}/hook",
        "port_override": str(free_port()),
        "notification_attempts": "1",
        **extra,
    }


def _restarted(queries: DataFusionQueries) -> EngineAPI:
    """A trigger whose cache is empty, as after a server restart."""
    return EngineAPI(database="mydb", query_handler=queries, cache=TriggerCache())


def _fired(engine: EngineAPI) -> list[str]:
    return [w.line for w in engine.writes if w.line.startswith("mad_alerts,")]


def _assert_every_query_ran(queries: DataFusionQueries) -> None:
    assert queries.failed == []
    assert "SHOW TABLES" in queries.sent
    assert any("information_schema.columns" in sql for sql in queries.sent)
    assert any("$since" in sql and "$until" in sql for sql in queries.sent)


def test_a_warm_start_on_datafusion_fires_at_the_first_outlier_after_a_restart() -> None:
    queries = DataFusionQueries()
    _stored(queries, "host=a", BASE)
    _stored(queries, "host=a", [100], start=len(BASE))  # the write that triggered the call
    engine = _restarted(queries)
    run_mad_plugin(engine, [_batch({"host": "a"}, [100], start=len(BASE))], _args())
    _assert_every_query_ran(queries)
    assert any(
        "warm start: 1 new series of cpu, 9 value(s) from 9 stored row(s)" in text
        for text in engine.log_texts("INFO")
    )
    (alert,) = _fired(engine)
    assert ",host=a," in alert and "state=firing" in alert and "value=100.0" in alert


def test_without_the_warm_start_the_same_outlier_gives_no_verdict() -> None:
    queries = DataFusionQueries()
    _stored(queries, "host=a", [*BASE, 100])
    engine = _restarted(queries)
    run_mad_plugin(
        engine, [_batch({"host": "a"}, [100], start=len(BASE))], _args(warm_start="false")
    )
    assert queries.failed == [] and _fired(engine) == []


def test_named_series_with_a_missing_tag_are_read_back_per_series() -> None:
    queries = DataFusionQueries()
    _stored(queries, "host=a,region=eu", BASE)
    _stored(queries, "host=b", [v + 100 for v in BASE])  # no region: NULL in the table
    _stored(queries, "host=c,region=us", [v * 10 for v in BASE])  # not in the batch
    engine = _restarted(queries)
    first = _batch({"host": "a", "region": "eu"}, [100], start=len(BASE))
    second = _batch({"host": "b"}, [0], start=len(BASE))
    batch = [{"table_name": "cpu", "rows": first["rows"] + second["rows"]}]  # one per table
    run_mad_plugin(engine, batch, _args())
    _assert_every_query_ran(queries)
    (history_sql,) = [sql for sql in queries.sent if "$since" in sql]
    assert "$s0t0" in history_sql and "IS NULL" in history_sql
    assert any(
        "warm start: 2 new series of cpu, 18 value(s) from 18 stored row(s)" in text
        for text in engine.log_texts("INFO")
    )
    fired = _fired(engine)
    assert len(fired) == 2
    assert any(",host=a,region=eu," in line for line in fired)
    assert any(",host=b,field=temp," in line for line in fired)


def test_the_schema_query_finds_the_tags_by_their_dictionary_type() -> None:
    queries = DataFusionQueries()
    _stored(queries, "host=a,region=eu", BASE)
    engine = _restarted(queries)
    schema = fetch_schema(engine, "cpu")
    assert schema.tags == ("host", "region")
    assert schema.columns == {"host", "region", "temp", "load", "time"}
    assert fetch_tables(engine) == {"cpu"}  # information_schema's own views are left out


def test_a_user_table_named_like_a_system_table_gets_only_its_own_columns() -> None:
    queries = DataFusionQueries()
    queries.context.sql("CREATE SCHEMA system").collect()
    system_queries = pa.record_batch([pa.array(["SELECT 1"])], names=["query_text"])
    queries.context.register_record_batches("system.queries", [[system_queries]])
    queries.write_lp("queries,host=a temp=1 1")
    schema = fetch_schema(_restarted(queries), "queries")
    assert schema.tags == ("host",) and schema.columns == {"host", "temp", "time"}


def test_results_are_converted_as_the_engine_converts_them() -> None:
    queries = DataFusionQueries()
    queries.write_lp('cpu,host=a temp=1.5,n=2i,u=3u,ok=t,msg="x" 5')
    (row,) = queries('SELECT host, temp, n, u, ok, msg, "time", NULL AS nothing FROM cpu', None, "")
    assert row == {
        "host": "a", "temp": 1.5, "n": 2, "u": 3, "ok": True, "msg": "x", "time": 5,
        "nothing": None,
    }  # fmt: skip
    assert type(row["host"]) is str and type(row["time"]) is int
    with pytest.raises(UnsupportedType, match="Unsupported data type"):
        queries("SELECT CAST(n AS INT) AS small FROM cpu", None, "")
