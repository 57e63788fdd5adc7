"""Missing data per series (issue 16): ``process_scheduled_call`` finds the series that stopped.

The gap logic alone (``GapTracker``), then the real plugin file against tables held in DataFusion,
the SQL engine of InfluxDB 3 (every query it sends must run there), with notifications going to a
loopback receiver.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import pytest

from madcheck.config.settings import ConfigError, load_config
from madcheck.detect.gaps import GapTracker
from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.engine.loader import load_entry_point
from madcheck.plugin.delivery import wait_for_sender
from madcheck.plugin.missing import MAX_SERIES, call_time_ns, last_seen_query
from tests.datafusion_engine import DataFusionQueries
from tests.support import DELIVERY_WAIT_S, MAD_PLUGIN, free_port, receiver

MIN_NS = 60 * 10**9
T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
A = (("host", "a"),)
B = (("host", "b"),)


# -- the gap logic -----------------------------------------------------------------------------


def test_a_gap_fires_once_and_resolves_when_a_newer_point_arrives() -> None:
    gaps = GapTracker("cpu", 5 * MIN_NS)
    assert gaps.update({A: T0, B: T0}, T0 + 4 * MIN_NS) == []
    (fired,) = gaps.update({A: T0 + 4 * MIN_NS, B: T0}, T0 + 5 * MIN_NS)
    assert (fired.tags, fired.state, fired.silent_ns) == (B, "firing", 5 * MIN_NS)
    assert gaps.update({A: T0 + 5 * MIN_NS, B: T0}, T0 + 6 * MIN_NS) == []  # still the same gap
    (back,) = gaps.update({A: T0 + 6 * MIN_NS, B: T0 + 7 * MIN_NS}, T0 + 8 * MIN_NS)
    assert (back.tags, back.state, back.last_seen_ns, back.time_ns) == (
        B,
        "resolved",
        T0,
        T0 + 7 * MIN_NS,
    )
    assert back.alert_id == fired.alert_id and gaps.open_gaps == 0


def test_a_series_that_returns_and_stops_again_between_calls_opens_a_new_gap() -> None:
    gaps = GapTracker("cpu", 5 * MIN_NS)
    gaps.update({A: T0}, T0 + 10 * MIN_NS)
    back, again = gaps.update({A: T0 + 11 * MIN_NS}, T0 + 20 * MIN_NS)
    assert (back.state, again.state, again.last_seen_ns) == ("resolved", "firing", T0 + 11 * MIN_NS)


def test_a_series_gone_from_the_answer_keeps_its_gap_and_its_return_is_reported() -> None:
    gaps = GapTracker("cpu", 5 * MIN_NS)
    gaps.update({A: T0}, T0 + 10 * MIN_NS)
    assert gaps.update({}, T0 + 3_000 * MIN_NS) == []  # silent for longer than the look-back
    (back,) = gaps.update({A: T0 + 3_001 * MIN_NS}, T0 + 3_002 * MIN_NS)
    assert back.resolved and back.silent_ns == 3_001 * MIN_NS


def test_the_stale_answer_of_an_older_overlapping_call_reopens_no_gap() -> None:
    gaps = GapTracker("cpu", 5 * MIN_NS)
    gaps.update({A: T0}, T0 + 10 * MIN_NS)  # a gap opens
    (back,) = gaps.update({A: T0 + 11 * MIN_NS}, T0 + 12 * MIN_NS)  # the newer call: data again
    assert back.resolved
    # a slow call at T0+11m, which read the table before the new point, finishes last
    assert gaps.update({A: T0}, T0 + 11 * MIN_NS) == [] and gaps.open_gaps == 0


def test_the_template_variables_of_a_gap() -> None:
    gaps = GapTracker("cpu", 5 * MIN_NS)
    (event,) = gaps.update({A: T0}, T0 + 46 * MIN_NS + 30 * 10**9)
    variables = event.variables()
    assert variables["last_seen"] == "2023-11-14T22:13:20Z"
    assert variables["duration"] == "46m30s"
    assert variables["time"] == "2023-11-14T22:59:50Z"
    assert (variables["tags"], variables["missing_after"], variables["rule"]) == (
        "host=a",
        "5m",
        "missing",
    )


# -- configuration -----------------------------------------------------------------------------

BASE_ARGS = {"measurement": "cpu", "senders": "http", "http_webhook_url": "http://127.0.0.1:1/h"}


def test_a_scheduled_trigger_needs_missing_after_but_not_mad_thresholds() -> None:
    config = load_config({**BASE_ARGS, "missing_after": "5m"}, {}, scheduled=True).config
    assert config.thresholds == () and config.missing is not None
    assert config.missing.after_ns == 5 * MIN_NS and config.missing.lookback_ns == 1440 * MIN_NS
    with pytest.raises(ConfigError, match="missing_after is required"):
        load_config(BASE_ARGS, {}, scheduled=True)
    with pytest.raises(ConfigError, match="mad_thresholds is required"):
        load_config({**BASE_ARGS, "missing_after": "5m"}, {})  # a data-writes trigger


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"missing_after": "soon"}, "missing_after"),
        ({"missing_after": "0"}, "greater than zero"),
        ({"missing_after": "2h", "missing_lookback": "1h"}, "longer than missing_after"),
        ({"missing_after": "5m", "missing_lookback": "400d"}, "at most 366d"),
    ],
)
def test_bad_missing_arguments_are_refused_naming_them(extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({**BASE_ARGS, **extra}, {}, scheduled=True)


def test_the_same_arguments_serve_the_data_writes_trigger() -> None:
    arguments = {**BASE_ARGS, "mad_thresholds": "temp:3:20:5", "missing_after": "5m"}
    loaded = load_config(arguments, {})
    assert len(loaded.config.thresholds) == 1
    assert not any("unknown" in warning for warning in loaded.warnings)


# -- the plugin against DataFusion -------------------------------------------------------------


def _engine(queries: DataFusionQueries, cache: TriggerCache | None = None) -> EngineAPI:
    return EngineAPI(database="mydb", query_handler=queries, cache=cache or TriggerCache())


def _call(engine: EngineAPI, call_time: datetime, args: dict[str, str]) -> None:
    """Run plugins/mad_check_plugin.py as the engine does (fresh globals each call), then let
    the trigger's background sender try what the call queued."""
    load_entry_point(MAD_PLUGIN, "process_scheduled_call")(engine, call_time, args)
    assert wait_for_sender(engine, DELIVERY_WAIT_S), "the sender did not settle"


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _args(port: int, **extra: str) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "senders": "http",
        "http_webhook_url": "http://127.0.0.1:9/hook",
        "port_override": str(port),
        "notification_attempts": "1",
        "retry_backoff": "0",
        "outbox_backoff": "0",
        "missing_after": "5m",
        **extra,
    }


def _history(engine: EngineAPI) -> list[str]:
    return [w.line for w in engine.writes if w.line.startswith("mad_alerts,")]


def test_one_query_per_call_finds_the_silent_series_and_alerts_once_per_gap() -> None:
    queries = DataFusionQueries()
    queries.write_lp(f"cpu,host=a,region=eu temp=1 {T0}\ncpu,host=b temp=1 {T0}")
    queries.write_lp(f"cpu,host=a,region=eu temp=2 {T0 + 9 * MIN_NS}")
    engine = _engine(queries)
    with receiver() as notifier:
        args = _args(notifier.port)
        _call(engine, _at(T0 + 10 * MIN_NS), args)
        _call(engine, _at(T0 + 11 * MIN_NS), args)  # the same gap: nothing new
    assert queries.failed == []
    detection = [sql for sql in queries.sent if "MAX" in sql]
    assert len(detection) == 2  # one per call; the schema query is cached
    (request,) = notifier.requests
    assert request.body["notification_text"] == (
        "MAD missing data: no data in cpu for 10m (last point 2023-11-14T22:13:20Z). Tags: host=b"
    )
    alert = request.body["alert"]
    assert (alert["rule"], alert["state"], alert["tags"]) == ("missing", "firing", {"host": "b"})
    assert alert["last_seen"] == "2023-11-14T22:13:20Z" and alert["duration_s"] == 600.0
    assert re.fullmatch("[0-9a-f]{32}", alert["event_id"])  # the notifier sends each once
    (row,) = _history(engine)
    assert row.startswith("mad_alerts,host=b,rule=missing,state=firing,alert_id=")
    assert "duration_s=600.0" in row and row.endswith(f" {T0 + 10 * MIN_NS}")
    # the call after the sender's post logs it, as a data-writes call does
    sent = [t for t in engine.log_texts("INFO") if "alert sent to http" in t]
    assert len(sent) == 1 and "missing rule 5m on cpu [host=b]" in sent[0]


def test_data_returning_sends_a_recovery_with_notify_recovery() -> None:
    queries = DataFusionQueries()
    queries.write_lp(f"cpu,host=b temp=1 {T0}")
    engine = _engine(queries)
    with receiver() as notifier:
        args = _args(notifier.port, notify_recovery="true")
        _call(engine, _at(T0 + 10 * MIN_NS), args)
        queries.write_lp(f"cpu,host=b temp=1 {T0 + 30 * MIN_NS}")
        _call(engine, _at(T0 + 31 * MIN_NS), args)
    firing, resolved = (r.body for r in notifier.requests)
    assert resolved["alert"]["state"] == "resolved"
    assert resolved["alert"]["alert_id"] == firing["alert"]["alert_id"]
    assert resolved["notification_text"] == (
        "MAD missing data over: cpu reports again after 30m of silence. Tags: host=b"
    )
    assert [("state=resolved" in row) for row in _history(engine)] == [False, True]


def test_without_notify_recovery_the_return_is_only_logged() -> None:
    queries = DataFusionQueries()
    queries.write_lp(f"cpu,host=b temp=1 {T0}")
    engine = _engine(queries)
    with receiver() as notifier:
        args = _args(notifier.port)
        _call(engine, _at(T0 + 10 * MIN_NS), args)
        queries.write_lp(f"cpu,host=b temp=1 {T0 + 30 * MIN_NS}")
        _call(engine, _at(T0 + 31 * MIN_NS), args)
    assert len(notifier.requests) == 1 and len(_history(engine)) == 1
    assert any("data is back: missing rule 5m on cpu [host=b]" in t for t in engine.log_texts())


def test_a_config_change_keeps_the_open_gaps_and_their_outbox() -> None:
    queries = DataFusionQueries()
    queries.write_lp(f"cpu,host=b temp=1 {T0}")
    engine = _engine(queries)
    with receiver() as notifier:
        _call(engine, _at(T0 + 10 * MIN_NS), _args(notifier.port))
        changed = _args(notifier.port, notification_missing_text="$tags is silent")
        _call(engine, _at(T0 + 11 * MIN_NS), changed)  # the same gap: not sent again
    assert len(notifier.requests) == 1
    assert sum("configuration loaded" in text for text in engine.log_texts("INFO")) == 2


def test_a_custom_template_and_series_beyond_the_look_back() -> None:
    queries = DataFusionQueries()
    queries.write_lp(f"cpu,host=old temp=1 {T0}\ncpu,host=b temp=1 {T0 + 60 * MIN_NS}")
    engine = _engine(queries)
    template = "$tags silent since $last_seen ($duration, limit $missing_after)"
    with receiver() as notifier:
        args = _args(notifier.port, missing_lookback="1h", notification_missing_text=template)
        _call(engine, _at(T0 + 70 * MIN_NS), args)
    assert notifier.texts() == ["host=b silent since 2023-11-14T23:13:20Z (10m, limit 5m)"]


def test_a_table_without_tags_is_one_series() -> None:
    queries = DataFusionQueries()
    queries.write_lp(f"cpu temp=1 {T0}")
    engine = _engine(queries)
    with receiver() as notifier:
        _call(engine, _at(T0 + 6 * MIN_NS), _args(notifier.port))
    assert queries.failed == []
    assert notifier.requests[0].body["alert"]["tags"] == {}


def test_an_empty_or_missing_table_alerts_nothing_and_the_trigger_goes_on() -> None:
    queries = DataFusionQueries()
    engine = _engine(queries)
    with receiver() as notifier:
        _call(engine, _at(T0), _args(notifier.port))  # no table cpu yet
        queries.write_lp(f"cpu,host=a temp=1 {T0 + 10 * MIN_NS}")
        _call(engine, _at(T0 + 11 * MIN_NS), _args(notifier.port))
    assert notifier.requests == []
    assert any("could not read the last points of 'cpu'" in t for t in engine.log_texts("WARN"))


def test_bad_arguments_and_call_times_are_logged_never_raised() -> None:
    queries = DataFusionQueries()
    engine = _engine(queries)
    entry = load_entry_point(MAD_PLUGIN, "process_scheduled_call")
    entry(engine, "2026-01-01", _args(free_port()))
    entry(engine, _at(T0), {"measurement": "cpu"})
    entry(engine, _at(T0), ["not", "a", "mapping"])
    errors = engine.log_texts("ERROR")
    assert any("call_time is not a datetime (str)" in t for t in errors)
    assert any("missing_after is required" in t or "senders is required" in t for t in errors)
    assert any("trigger arguments must be key=value pairs" in t for t in errors)


def test_tag_names_a_stranger_chose_are_quoted_in_the_query() -> None:
    sql = last_seen_query('cpu"; DROP TABLE x; --', ('ho"st', "region"))
    assert sql.startswith('SELECT "ho""st", "region", MAX("time") AS "last_seen" FROM ')
    assert '"cpu""; DROP TABLE x; --"' in sql and sql.endswith(f"LIMIT {MAX_SERIES + 1}")
    queries = DataFusionQueries()
    queries.write_lp(f'cpu,ho"st=a temp=1 {T0}')
    engine = _engine(queries)
    with receiver() as notifier:
        _call(engine, _at(T0 + 6 * MIN_NS), _args(notifier.port))
    assert queries.failed == [] and notifier.requests[0].body["alert"]["tags"] == {'ho"st': "a"}


def test_call_time_as_influxdb_passes_it_naive_local_whole_seconds() -> None:
    naive = datetime.fromtimestamp(1_700_000_000)  # what InfluxDB 3's PyDateTime gives
    assert call_time_ns(naive) == T0
    assert call_time_ns(_at(T0)) == T0
    assert call_time_ns(1_700_000_000) is None


def test_overlapping_scheduled_calls_build_one_state_and_report_each_gap_once() -> None:
    """With ``--run-asynchronous`` calls overlap, e.g. a slow call and the next time's; the
    state is built once and a gap found by both is reported by one of them only."""
    queries = DataFusionQueries()
    queries.write_lp("\n".join(f"cpu,host=h{i} temp=1 {T0}" for i in range(5)))
    guard = threading.Lock()

    def one_query_at_a_time(sql: str, params: dict[str, str] | None, db: str) -> list[dict]:
        with guard:  # the DataFusion context of the oracle, not the plugin, needs this
            return queries(sql, params, db)

    engine = EngineAPI(database="mydb", query_handler=one_query_at_a_time, cache=TriggerCache())
    entry = load_entry_point(MAD_PLUGIN, "process_scheduled_call")
    start = threading.Barrier(6)
    failures: list[BaseException] = []
    with receiver() as notifier:
        args = _args(notifier.port)

        def caller() -> None:
            try:
                start.wait()
                entry(engine, _at(T0 + 10 * MIN_NS), args)
            except BaseException as error:  # reported below, not lost in the thread
                failures.append(error)

        threads = [threading.Thread(target=caller) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DELIVERY_WAIT_S)
        assert wait_for_sender(engine, DELIVERY_WAIT_S)
    assert failures == []
    assert sorted(r.body["alert"]["tags"]["host"] for r in notifier.requests) == [
        f"h{i}" for i in range(5)
    ]
    assert len(_history(engine)) == 5
    assert sum("configuration loaded" in t for t in engine.log_texts("INFO")) == 1
