"""Inputs at the edges that once stopped a trigger or lost alerts (found in review)."""

import sys
from datetime import datetime

import pytest

from madcheck.config.settings import load_config
from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import alert_id_for
from madcheck.engine.loader import load_entry_point
from madcheck.plugin.delivery import wait_for_delivery
from tests.support import (
    DELIVERY_WAIT_S,
    MAD_PLUGIN,
    delivered_and_logged,
    make_engine,
    receiver,
    rows,
    run_and_settle,
    run_mad_plugin,
)
from tests.test_plugin_delivery import alert_batch, args_for


def history_lines(engine):
    return [w.line for w in engine.writes if w.line.startswith("mad_alerts")]


def test_a_band_overflowing_to_infinity_is_sent_as_null_and_blocks_nothing():
    # window [0.7e308, 1.3e308, 1e308, 1.3e308, 0.7e308]: median 1e308, MAD 0.3e308 -> the
    # upper bound 1e308 + 3 * 0.3e308 overflows; 0.0 (far below) is an outlier.
    huge = [rows("cpu", [0.7e308, 1.3e308, 1e308, 1.3e308, 0.7e308, 0.0], host="big")]
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(notifier.port, mad_thresholds="temp:3:5:1")
        run_and_settle(engine, huge, args)
        run_and_settle(engine, [rows("cpu", [1, 2, 3, 2, 1, 50], host="ok")], args)
        alerts = [r.body["alert"] for r in notifier.requests]
    assert [a["tags"]["host"] for a in alerts] == ["big", "ok"]
    assert alerts[0]["upper"] is None and alerts[0]["value"] == 0.0
    big_row = next(line for line in history_lines(engine) if "host=big" in line)
    assert "upper=" not in big_row and "value=0.0" in big_row
    assert not engine.log_texts("ERROR")


def test_unicode_digits_and_endless_durations_are_skipped_segments():
    loaded = load_config(
        {
            "measurement": "cpu",
            "mad_thresholds": "temp:2.5:20:5@load:3:10:²@io:3:10:" + "9" * 400 + "s@x:3:9:0.1ns",
            "senders": "http",
            "http_webhook_url": "http://127.0.0.1:9/hook",
        },
        environ={},
    )
    assert [t.describe() for t in loaded.config.thresholds] == ["temp:2.5:20:5"]
    skipped = [w for w in loaded.warnings if "skipped" in w]
    assert len(skipped) == 3


@pytest.mark.parametrize(
    "token", ["\u201capiv3_token\u201d", "apiv3 token"], ids=["typographic-quotes", "space"]
)
def test_a_token_no_http_header_can_carry_is_one_configuration_error(token):
    engine = make_engine()
    args = args_for(9, influxdb3_auth_token=token)
    for _ in range(3):
        run_and_settle(engine, alert_batch("a"), args)
    (error,) = engine.log_texts("ERROR")
    assert "configuration error" in error and "HTTP header cannot carry" in error
    assert "apiv3" not in error


def test_only_one_matching_pair_of_quotes_is_removed_from_a_template():
    template = "Field '$field' on '$tags' is high: '$value'"
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(
            engine, alert_batch("a"), args_for(notifier.port, notification_count_text=template)
        )
        (request,) = notifier.requests
    assert request.body["notification_text"] == "Field 'temp' on 'host=a' is high: '100'"


def test_alert_ids_tell_apart_k_values_that_print_alike():
    a = Threshold("temp", 1.0000001, 10, count=3)
    b = Threshold("temp", 1.0000002, 10, count=3)
    assert a.describe() == b.describe()
    assert alert_id_for("cpu", "temp", (), a) != alert_id_for("cpu", "temp", (), b)


def test_a_2xx_that_names_a_failed_sender_keeps_that_sender_waiting():
    partial_ok = {
        "status": "partial",
        "results": {"slack": {"ok": True}, "discord": {"ok": False, "reason": "HTTP 500"}},
    }
    discord_ok = {"status": "ok", "results": {"discord": {"ok": True}}}
    with receiver() as notifier:
        notifier.script = [(200, partial_ok, 0, {}), (200, discord_ok, 0, {})]
        engine = make_engine()
        args = args_for(
            notifier.port,
            senders="slack.discord",
            discord_webhook_url="https://discord.test/x",
            outbox_backoff="10ms",
        )
        run_mad_plugin(engine, alert_batch("a"), args)
        assert delivered_and_logged(engine, args)
        first, second = notifier.requests
    assert set(first.body["senders_config"]) == {"slack", "discord"}
    assert set(second.body["senders_config"]) == {"discord"}


def test_a_missing_dependency_is_named_by_the_plugin_file(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)
    # forget the modules between the plugin file and requests, so that they are imported again
    importers = (
        "madcheck.plugin.writes",
        "madcheck.plugin.trigger_state",
        "madcheck.notify.client",
    )
    for name in [m for m in sys.modules if m.startswith(importers)]:
        monkeypatch.delitem(sys.modules, name)
    engine = make_engine()
    run_mad_plugin(engine, alert_batch("a"), args_for(9))
    (error,) = engine.log_texts("ERROR")
    assert "influxdb3 install package requests" in error


def test_a_missing_dependency_is_named_by_the_scheduled_entry_point_too(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)
    importers = (
        "madcheck.plugin.missing",
        "madcheck.plugin.trigger_state",
        "madcheck.notify.client",
    )
    for name in [m for m in sys.modules if m.startswith(importers)]:
        monkeypatch.delitem(sys.modules, name)
    engine = make_engine()
    entry = load_entry_point(MAD_PLUGIN, "process_scheduled_call")
    entry(engine, datetime.fromtimestamp(1_700_000_000), {**args_for(9), "missing_after": "5m"})
    (error,) = engine.log_texts("ERROR")
    assert "influxdb3 install package requests" in error


@pytest.mark.parametrize("batches", [None, "cpu", 42])
def test_table_batches_that_are_not_a_list_still_log_the_deliveries(batches):
    with receiver() as notifier:
        notifier.script = [(503, None, 0, {}), (200, {"status": "ok", "results": {}}, 0, {})]
        engine = make_engine()
        args = args_for(notifier.port, outbox_backoff="10ms")
        run_mad_plugin(engine, alert_batch("a"), args)  # 503: the alert waits, then goes
        assert wait_for_delivery(engine, DELIVERY_WAIT_S)
        run_mad_plugin(engine, batches, args)
        assert len(notifier.requests) == 2
    assert any("table_batches is not a list" in w for w in engine.log_texts("WARN"))
    assert any("alert sent to slack (after 1 failed tries)" in i for i in engine.log_texts("INFO"))
