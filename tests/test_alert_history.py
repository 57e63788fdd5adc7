"""Every alert event is written back to ``alerts_table`` (issue 8's history)."""

import pytest

from tests.support import free_port, make_engine, rows, run_mad_plugin
from tests.test_plugin_writes import BASE, anomaly_batch, args_for


def history(engine):
    return [w for w in engine.writes if w.line.startswith("mad_alerts")]


def tags_of(line):
    head = line.split(" ")[0]
    return dict(pair.split("=") for pair in head.split(",")[1:])


def test_firing_alert_is_written_with_the_series_tags_and_detector_values():
    engine = make_engine()
    run_mad_plugin(engine, anomaly_batch(), args_for(free_port(), notification_attempts="1"))
    (write,) = history(engine)
    assert write.database == "mydb"
    _, fields, time_ns = write.line.split(" ")
    tags = tags_of(write.line)
    assert tags["host"] == "server1" and tags["field"] == "temp"
    assert tags["rule"] == "count" and tags["state"] == "firing" and len(tags["alert_id"]) == 16
    values = dict(pair.split("=") for pair in fields.split(","))
    assert values["value"] == "100.0" and values["median"] == "11.0" and values["mad"] == "1.0"
    assert values["lower"] == "8.0" and values["upper"] == "14.0" and values["k"] == "3.0"
    assert values["window_count"] == "9i" and values["threshold"] == '"2"'
    assert int(time_ns) == (1_700_000_000 + 100) * 10**9


def test_suppressed_alert_is_recorded_as_suppressed():
    engine = make_engine()
    batch = [rows("cpu", [*BASE, 100, 11, 100, 10, 100, 100], host="a")]
    run_mad_plugin(engine, batch, args_for(free_port(), state_change_count="5"))
    (write,) = history(engine)
    assert tags_of(write.line)["state"] == "suppressed" and "transitions=5i" in write.line


def test_alert_id_is_stable_across_calls_and_distinct_per_series():
    engine = make_engine()
    args = args_for(free_port(), notification_attempts="1")
    run_mad_plugin(engine, anomaly_batch(host="a") + anomaly_batch(host="b"), args)
    later = [rows("cpu", [100, 100], start_s=1_700_001_000, host="a")]
    run_mad_plugin(engine, later, args)
    ids = [tags_of(w.line)["alert_id"] for w in history(engine)]
    assert len(ids) == 3 and ids[0] == ids[2] and ids[0] != ids[1]


def test_history_can_be_turned_off():
    engine = make_engine()
    run_mad_plugin(engine, anomaly_batch(), args_for(free_port(), alerts_table=""))
    assert engine.writes == []


def test_series_tag_named_like_a_history_tag_is_kept_under_another_name():
    engine = make_engine({"cpu": {"tags": ["state"], "fields": ["temp"]}})
    run_mad_plugin(engine, anomaly_batch(state="CA"), args_for(free_port()))
    (write,) = history(engine)
    tags = tags_of(write.line)
    assert tags["tag_state"] == "CA" and tags["state"] == "firing"


def test_alerts_table_equal_to_measurement_is_refused():
    engine = make_engine()
    run_mad_plugin(engine, anomaly_batch(), args_for(free_port(), alerts_table="cpu"))
    (error,) = engine.log_texts("ERROR")
    assert "alerts_table must differ from measurement" in error


@pytest.mark.parametrize("table", ["mad_alerts", "other"])
def test_the_plugin_does_not_react_to_its_own_table(table):
    engine = make_engine()
    args = args_for(free_port())
    run_mad_plugin(engine, anomaly_batch(), args)
    before = len(engine.writes)
    run_mad_plugin(engine, [rows(table, [*BASE, 100, 100], host="x")], args)
    assert len(engine.writes) == before
