"""The MAD plugin file, executed as the engine executes it, against a loopback notifier."""

import base64
import json
import sys
from pathlib import Path

import pytest

from madcheck.engine.cache import TriggerCache
from madcheck.plugin.writes import STATE_KEY
from tests.support import (
    MAD_PLUGIN,
    free_port,
    make_engine,
    receiver,
    rows,
    run_and_settle,
    run_mad_plugin,
)

BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]  # median 11, MAD 1 (see test_detector)
HOOK = "https://hooks.slack.test/services/T000/B000/XXXXSECRET"
TOKEN = "apiv3_top_secret_token"


def args_for(port, **extra):
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "senders": "slack",
        "slack_webhook_url": HOOK,
        "influxdb3_auth_token": TOKEN,
        "port_override": str(port),
        "retry_backoff": "0",
        "notification_timeout": "2s",
        **extra,
    }


def anomaly_batch(**tags):
    return [rows("cpu", [*BASE, 100, 100], **(tags or {"host": "server1"}))]


def all_logs(engine):
    return "\n".join(engine.log_texts())


def test_alert_reaches_the_notifier_with_the_seed_payload_and_token():
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(engine, anomaly_batch(), args_for(notifier.port))
        (request,) = notifier.requests
    assert request.path == "/api/v3/engine/notify"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body["notification_text"] == (
        "MAD count alert: Field temp in cpu outlier for 2 consecutive points. Tags: host=server1"
    )
    assert request.body["senders_config"] == {"slack": {"slack_webhook_url": HOOK}}
    assert request.body["alert"]["value"] == 100 and request.body["alert"]["median"] == 11
    logs = all_logs(engine)
    assert "configuration loaded" in logs and "alert sent to slack" in logs
    assert HOOK not in logs and TOKEN not in logs


def test_every_template_variable():
    template = (
        "$table|$field|$tags|$threshold_count|$value|$median|$mad|$lower|$upper|$k|"
        "$window_count|$time|$unknown"
    )
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(
            engine, anomaly_batch(), args_for(notifier.port, notification_count_text=template)
        )
        (request,) = notifier.requests
    # second 100 at t = 1_700_000_000 s (22:13:20Z) + 10*10 s = 2023-11-14T22:15:00Z; window holds
    # BASE[2:] + [100, 100]: median 11, MAD 1 -> band [8, 14]
    assert request.body["notification_text"] == (
        "cpu|temp|host=server1|2|100|11|1|8|14|3|9|2023-11-14T22:15:00Z|$unknown"
    )


def test_duration_template_and_tags_of_several_columns():
    template = "$field over $threshold_time on $tags"
    with receiver() as notifier:
        engine = make_engine({"cpu": {"tags": ["host", "region"], "fields": ["load"]}})
        batch = [rows("cpu", [*BASE, 50, 50, 50, 50], field_name="load", host="h1", region="eu")]
        run_and_settle(
            engine,
            batch,
            args_for(notifier.port, mad_thresholds="load:3:9:25s", notification_time_text=template),
        )
    assert notifier.texts() == ["load over 25s on host=h1,region=eu"]


def test_state_survives_between_calls_in_the_engine_cache():
    with receiver() as notifier:
        engine = make_engine()
        batch = anomaly_batch()[0]["rows"]
        for row in batch:  # one row per call, as slow writers would produce
            run_and_settle(engine, [{"table_name": "cpu", "rows": [row]}], args_for(notifier.port))
        assert len(notifier.requests) == 1
    assert all_logs(engine).count("configuration loaded") == 1


def test_config_is_rebuilt_when_arguments_change():
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(notifier.port))
        first = engine.cache.get(STATE_KEY)
        run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(notifier.port))
        assert engine.cache.get(STATE_KEY) is first
        run_and_settle(
            engine, [rows("cpu", BASE, host="a")], args_for(notifier.port, state_change_count="3")
        )
        assert engine.cache.get(STATE_KEY).config.state_change_count == 3


def test_batches_of_other_tables_are_ignored_without_queries():
    engine = make_engine()
    run_and_settle(engine, [rows("mem", BASE, host="a")], args_for(free_port()))
    queries = engine.query_handler.calls
    run_and_settle(engine, [rows("mem", BASE, host="a")] * 5, args_for(free_port()))
    assert engine.query_handler.calls == queries  # nothing asked for foreign tables


def test_tag_names_come_from_the_schema_and_are_cached_for_an_hour():
    now = [0.0]
    with receiver() as notifier:
        engine = make_engine(cache=TriggerCache(clock=lambda: now[0]))
        run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(notifier.port))
        run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(notifier.port))
        schema_queries = [q for q in engine.query_handler.calls if "information_schema" in q]
        assert len(schema_queries) == 1
        now[0] = 3601.0
        run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(notifier.port))
        schema_queries = [q for q in engine.query_handler.calls if "information_schema" in q]
        assert len(schema_queries) == 2


def test_a_new_column_refreshes_the_schema_early():
    engine = make_engine()
    run_and_settle(engine, [rows("cpu", BASE, host="a")], args_for(free_port()))
    engine.query_handler.tables["cpu"]["tags"].append("dc")
    run_and_settle(engine, [rows("cpu", BASE, host="a", dc="x")], args_for(free_port()))
    schema_queries = [q for q in engine.query_handler.calls if "information_schema" in q]
    assert len(schema_queries) == 2


def test_missing_table_is_reported_once_at_load():
    engine = make_engine({"other": {"tags": [], "fields": []}})
    run_and_settle(engine, [], args_for(free_port()))
    assert any("does not exist yet" in line for line in engine.log_texts("WARN"))


def test_flapping_alert_is_suppressed_and_logged_not_sent():
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", [*BASE, 100, 11, 100, 10, 100, 100], host="a")]
        run_and_settle(engine, batch, args_for(notifier.port, state_change_count="5"))
        assert notifier.requests == []
    assert any("alert suppressed, 5 state changes" in line for line in engine.log_texts("INFO"))


@pytest.mark.parametrize(
    "bad_args",
    [
        None,
        {},
        {"measurement": "cpu"},
        {"measurement": "cpu", "mad_thresholds": "garbage", "senders": "slack"},
        {"measurement": "cpu", "mad_thresholds": "temp:3:9:2", "senders": "slack"},
        {"measurement": "cpu", "mad_thresholds": "temp:3:9:2", "senders": "pager"},
    ],
)
def test_unusable_arguments_log_one_clear_error_and_never_raise(bad_args):
    engine = make_engine()
    for _ in range(3):
        run_and_settle(engine, anomaly_batch(), bad_args)
    errors = engine.log_texts("ERROR")
    assert len(errors) == 1 and "configuration error" in errors[0]


def test_bad_segments_and_senders_are_warned_and_good_ones_run():
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(
            engine,
            anomaly_batch(),
            args_for(notifier.port, mad_thresholds="temp:3:9:2@oops", senders="slack.discord"),
        )
        assert len(notifier.requests) == 1
    warnings = engine.log_texts("WARN")
    assert any("condition 2 (oops) skipped" in w for w in warnings)
    assert any("'discord' dropped" in w for w in warnings)


def test_bad_rows_are_counted_in_one_line_and_lose_nothing_else():
    with receiver() as notifier:
        engine = make_engine()
        batch = anomaly_batch()
        batch[0]["rows"] += [
            {"host": "server1", "temp": "hot", "time": 1},
            {"host": "server1", "temp": float("nan"), "time": 2},
            {"host": "server1", "temp": True, "time": 3},
            {"host": "server1", "temp": 10**400, "time": 4},
            {"host": "server1", "temp": 1.0},
            {"host": "server1", "temp": 1.0, "time": "yesterday"},
            {"host": "ünïcode-tag", "temp": 1e308, "time": 5},
            {"unknown_tag": "z", "temp": 1.0, "time": 6},
            "not a row",
        ]
        run_and_settle(engine, batch, args_for(notifier.port))
        # the bad rows sort before the base (tiny times) and reset nothing after it
        assert len(notifier.requests) == 1
    (warning,) = [w for w in engine.log_texts("WARN") if "passed over" in w]
    assert "value not numeric (2)" in warning and "value NaN or infinite (2)" in warning
    assert not engine.log_texts("ERROR")


def test_a_clean_batch_logs_no_passed_over_warning():
    """Every value usable, in a batch large enough for numpy's block path: nothing to report."""
    engine = make_engine()
    values = [10.0 + (i % 3) for i in range(60)]
    batch = [rows("cpu", values, host="h1")]
    args = {**args_for(free_port()), "mad_thresholds": "temp:3:5:2@temp:4:5:2"}
    run_mad_plugin(engine, batch, args)
    run_mad_plugin(engine, batch, args)
    assert not [w for w in engine.log_texts("WARN") if "passed over" in w]


def test_malformed_batches_never_raise():
    engine = make_engine()
    for batches in [
        [],
        [{}],
        [{"table_name": "cpu"}],
        [{"table_name": "cpu", "rows": 5}],
        ["junk"],
        [{"table_name": "cpu", "rows": [None, 1, "x"]}],
    ]:
        run_and_settle(engine, batches, args_for(free_port()))
    assert not engine.log_texts("ERROR")


def test_notifier_refusing_connections_is_an_error_after_three_attempts():
    engine = make_engine()
    run_and_settle(engine, anomaly_batch(), args_for(free_port()))
    (error,) = engine.log_texts("ERROR")
    assert "alert delivery failed (connection failed after 3 attempts)" in error
    assert HOOK not in error and TOKEN not in error


def test_notifier_answering_500_is_retried_and_then_reported():
    with receiver() as notifier:
        notifier.script = [(500, {"error": "boom"}, 0.0, {})] * 2 + [
            (200, {"status": "ok", "results": {"slack": {"ok": True}}}, 0.0, {})
        ]
        engine = make_engine()
        run_and_settle(engine, anomaly_batch(), args_for(notifier.port))
        assert len(notifier.requests) == 3
    assert any("alert sent" in line for line in engine.log_texts("INFO"))
    assert not engine.log_texts("ERROR")


def test_per_sender_failures_from_the_notifier_are_named():
    answer = {"status": "partial", "results": {"slack": {"ok": False, "reason": "HTTP 404"}}}
    with receiver() as notifier:
        notifier.script = [(502, answer, 0.0, {})]
        engine = make_engine()
        run_and_settle(engine, anomaly_batch(), args_for(notifier.port, notification_attempts="1"))
    (error,) = engine.log_texts("ERROR")
    assert "failed senders: slack (HTTP 404)" in error


def test_notifier_per_sender_answer_is_not_reposted_to_every_sender():
    answer = {
        "status": "partial",
        "results": {"slack": {"ok": True, "reason": "HTTP 200"}, "http": {"ok": False}},
    }
    with receiver() as notifier:
        notifier.script = [(502, answer, 0.0, {})]
        engine = make_engine()
        args = args_for(
            notifier.port, senders="slack.http", http_webhook_url="https://hooks.test/mad"
        )
        run_and_settle(engine, anomaly_batch(), args)
        assert len(notifier.requests) == 1  # slack already has it: no blind re-post
    (error,) = engine.log_texts("ERROR")
    assert "failed senders: http (failed)" in error


def test_hanging_notifier_times_out():
    with receiver() as notifier:
        notifier.script = [(200, {}, 0.5, {})]
        engine = make_engine()
        run_and_settle(
            engine,
            anomaly_batch(),
            args_for(notifier.port, notification_timeout="100ms", notification_attempts="2"),
        )
        assert len(notifier.requests) == 2
    (error,) = engine.log_texts("ERROR")
    assert "timed out after 2 attempts" in error


def test_plugin_file_runs_in_fresh_globals_without_its_folder_on_the_path():
    source = MAD_PLUGIN.read_text()
    assert "__file__" not in source.replace("``__file__``", "")
    assert str(MAD_PLUGIN.parent) not in sys.path
    namespace: dict = {}
    exec(compile(source, "mad_check_plugin.py", "exec"), namespace)
    assert callable(namespace["process_writes"])


def test_plugin_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "madcheck.plugin.writes", None)  # import fails
    engine = make_engine()
    run_mad_plugin(engine, anomaly_batch(), args_for(free_port()))
    (error,) = engine.log_texts("ERROR")
    assert "influxdb3 install package <path of the madcheck wheel>" in error


def test_headers_and_twilio_values_never_reach_logs():
    secrets = {
        "slack_headers": base64.b64encode(json.dumps({"X-Secret": "hdrvalue"}).encode()).decode(),
        "twilio_sid": "AC0123456789secretsid",
        "twilio_token": "twiliotokensecret",
        "twilio_from_number": "+15550001111",
        "twilio_to_number": "+15550002222",
    }
    engine = make_engine()
    run_and_settle(
        engine,
        anomaly_batch(),
        args_for(free_port(), senders="slack.sms", notification_attempts="1", **secrets),
    )
    logs = all_logs(engine)
    assert "alert delivery failed" in logs
    for value in [HOOK, TOKEN, *secrets.values()]:
        assert value not in logs


def test_unexpected_failure_is_logged_with_secrets_masked(monkeypatch):
    import madcheck.plugin.writes as writes

    def explode(*args, **kwargs):
        raise RuntimeError(f"boom near {HOOK}")

    monkeypatch.setattr(writes, "_process_table", explode)
    engine = make_engine()
    run_and_settle(engine, anomaly_batch(), args_for(free_port()))
    (error,) = engine.log_texts("ERROR")
    assert "call failed with RuntimeError" in error and HOOK not in error


def test_toml_config_file_through_the_plugin(tmp_path, monkeypatch):
    Path(tmp_path, "mad.toml").write_text('mad_thresholds = [["temp", 3, 9, 2]]\n')
    monkeypatch.setenv("PLUGIN_DIR", str(tmp_path))
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(notifier.port, mad_thresholds="temp:3:9:50", config_file_path="mad.toml")
        run_and_settle(engine, anomaly_batch(), args)
        assert len(notifier.requests) == 1  # the file's count of 2 won over the argument's 50
