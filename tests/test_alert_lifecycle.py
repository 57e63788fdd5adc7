"""Issue 8's alert lifecycle through the plugin: recovery notifications, repeat control, resolved
rows in the alert history, one alert id from firing to resolved.

Bands below are worked out from the definition (median and MAD of the last 9 values, k=3).
BASE alone gives median 11, MAD 1, band [8, 14]; rows are 10 s apart, so the n-th value (from
0) is at T0 + 10n s: the first value after BASE is at T0+90.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madcheck.config.settings import load_config
from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import human_duration
from madcheck.detect.detector import Detector
from tests.support import (
    delivered_and_logged,
    free_port,
    make_engine,
    receiver,
    rows,
    run_and_settle,
)
from tests.test_alert_history import history, tags_of
from tests.test_plugin_delivery import skip_backoff
from tests.test_plugin_writes import BASE, args_for

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
S = 10**9

# Fires (count 2) at T0+100, then three normal points: 11 at T0+110 and T0+120 (band [8, 14])
# and T0+130 (window 10 11 11 11 11 11 12 100 100: median 11, MAD 0, band [11, 11]: normal).
RECOVERING = [*BASE, 100, 100, 11, 11, 11]


def recovery_args(port, **extra):
    return args_for(port, notify_recovery="true", **extra)


def alerts_of(notifier):
    return [request.body["alert"] for request in notifier.requests]


def fields_of(line):
    return dict(pair.split("=") for pair in line.split(" ")[1].split(","))


# -- recovery notifications ------------------------------------------------------------------


def test_one_recovery_after_three_normal_points_with_the_alerts_id_and_duration():
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", [*RECOVERING, 11, 11, 11], host="server1")]
        run_and_settle(engine, batch, recovery_args(notifier.port))
    firing, resolved = alerts_of(notifier)  # exactly one recovery, however long it stays normal
    assert firing["state"] == "firing" and resolved["state"] == "resolved"
    assert resolved["alert_id"] == firing["alert_id"]
    assert resolved["time"] == "2023-11-14T22:15:30Z"  # T0+130
    assert resolved["started"] == "2023-11-14T22:15:00Z" and resolved["duration_s"] == 30.0
    assert (resolved["value"], resolved["median"], resolved["mad"]) == (11, 11, 0)
    assert notifier.texts()[1] == (
        "MAD recovery: Field temp in cpu back to normal after 30s. Tags: host=server1"
    )
    assert (
        notifier.requests[1].body["senders_config"] == notifier.requests[0].body["senders_config"]
    )
    assert any("recovery sent to slack" in line for line in engine.log_texts("INFO"))


def test_recovery_is_off_by_default():
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(engine, [rows("cpu", RECOVERING, host="a")], args_for(notifier.port))
    assert [a["state"] for a in alerts_of(notifier)] == ["firing"]
    assert [tags_of(w.line)["state"] for w in history(engine)] == ["firing"]


def test_an_outlier_restarts_the_recovery_count():
    # fires at T0+100; normal at 110 and 120; 100 at 130 is an outlier (band [8, 14]) though
    # too short a run to fire; then normal at 140, 150, 160 -> resolved at 160, after 60 s.
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", [*BASE, 100, 100, 11, 11, 100, 11, 11, 11], host="a")]
        run_and_settle(engine, batch, recovery_args(notifier.port))
    _, resolved = alerts_of(notifier)
    assert resolved["time"] == "2023-11-14T22:16:00Z" and resolved["duration_s"] == 60.0


@pytest.mark.parametrize("gap", [None, "n/a", float("nan")])
def test_a_missing_or_unusable_value_restarts_the_recovery_count(gap):
    # the gap at T0+130 restarts the count: the three normal values after it end at T0+160
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", [*BASE, 100, 100, 11, 11, gap, 11, 11, 11], host="a")]
        run_and_settle(engine, batch, recovery_args(notifier.port))
    _, resolved = alerts_of(notifier)
    assert resolved["time"] == "2023-11-14T22:16:00Z" and resolved["duration_s"] == 60.0


def test_recovery_count_and_template_with_every_lifecycle_variable():
    # 930 s between rows: fires at T0+9300 s, recovery_count=1 -> resolved at the next row,
    # T0+10230 s = 2023-11-15T01:03:50Z, 930 s = 15m30s later, band still [8, 14]
    template = "$alert_id|$duration|$value|$lower|$upper|$time|$tags|$rule"
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", RECOVERING, step_s=930, host="a")]
        args = recovery_args(notifier.port, recovery_count="1", notification_recovery_text=template)
        run_and_settle(engine, batch, args)
    firing, _ = alerts_of(notifier)
    assert (
        notifier.texts()[1]
        == f"{firing['alert_id']}|15m30s|11|8|14|2023-11-15T01:03:50Z|host=a|count"
    )


def test_duration_is_human_readable_over_hours():
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", RECOVERING, step_s=1_230, host="a")]
        run_and_settle(
            engine, batch, recovery_args(notifier.port, notification_recovery_text="$duration")
        )
    # three rows of 1230 s between firing and recovery: 3690 s
    assert notifier.texts()[1] == "1h1m30s"


def test_a_duration_alert_recovers_too():
    # load:3:9:25s: the outlier run starts at T0+90 and spans 30 s at T0+120 (fires); 11 is
    # normal at 130 and 140 (band [6, 18]) and 150 (band [8, 14]): resolved 30 s after firing
    template = "$field back after $duration (rule $rule, $threshold_time)"
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", [*BASE, 50, 50, 50, 50, 11, 11, 11], field_name="load", host="a")]
        args = recovery_args(
            notifier.port, mad_thresholds="load:3:9:25s", notification_recovery_text=template
        )
        run_and_settle(engine, batch, args)
    assert [a["time"] for a in alerts_of(notifier)] == [
        "2023-11-14T22:15:20Z",
        "2023-11-14T22:15:50Z",
    ]
    assert notifier.texts()[1] == "load back after 30s (rule duration, 25s)"


def test_recovery_waits_across_calls_in_the_trigger_cache():
    with receiver() as notifier:
        engine = make_engine()
        args = recovery_args(notifier.port)
        for row in rows("cpu", RECOVERING, host="a")["rows"]:
            run_and_settle(engine, [{"table_name": "cpu", "rows": [row]}], args)
    assert [a["state"] for a in alerts_of(notifier)] == ["firing", "resolved"]


def test_each_series_recovers_on_its_own():
    with receiver() as notifier:
        engine = make_engine()
        batch = [
            rows("cpu", RECOVERING, host="a"),
            rows("cpu", [*BASE, 100, 100, 100, 11, 11, 11], start_s=T0 + 5, host="b"),
        ]
        run_and_settle(engine, batch, recovery_args(notifier.port))
    by_host = {}
    for alert in alerts_of(notifier):
        by_host.setdefault(alert["tags"]["host"], []).append((alert["state"], alert["time"]))
    assert by_host["a"] == [
        ("firing", "2023-11-14T22:15:00Z"),
        ("resolved", "2023-11-14T22:15:30Z"),
    ]
    # host b: fires at +105, still an outlier at +115 (band [6, 18]), then normal from +125
    # (band [8, 14]): resolved at +145
    assert by_host["b"] == [
        ("firing", "2023-11-14T22:15:05Z"),
        ("resolved", "2023-11-14T22:15:45Z"),
    ]


def test_a_suppressed_alert_opens_nothing_to_recover():
    # flapping: the rule fires at T0+140 with 5 transitions in the window -> suppressed; the
    # normal values after it bring no recovery, since nobody was told of an alert.
    with receiver() as notifier:
        engine = make_engine()
        batch = [rows("cpu", [*BASE, 100, 11, 100, 10, 100, 100, 11, 11, 11], host="a")]
        run_and_settle(engine, batch, recovery_args(notifier.port, state_change_count="5"))
    assert notifier.requests == []
    assert [tags_of(w.line)["state"] for w in history(engine)] == ["suppressed"]


def test_a_recovery_the_notifier_missed_waits_in_the_outbox_and_is_logged_as_such():
    port = free_port()
    engine = make_engine()
    args = recovery_args(
        port, notification_attempts="1", outbox_backoff="1h", outbox_backoff_max="1h"
    )
    run_and_settle(engine, [rows("cpu", RECOVERING, host="a")], args)
    (error,) = engine.log_texts("ERROR")  # one line for the try: the alert and its recovery
    assert "alert delivery failed (connection failed)" in error and "2 alert(s) waiting" in error
    with receiver(port) as notifier:
        skip_backoff(engine)
        assert delivered_and_logged(engine, args)
    assert [alert["state"] for alert in alerts_of(notifier)] == ["firing", "resolved"]
    (recovery,) = [
        i for i in engine.log_texts("INFO") if i.split("] ", 1)[1].startswith("recovery sent")
    ]
    assert "back to normal after 30s" in recovery


# -- history ---------------------------------------------------------------------------------


def test_resolved_row_in_the_history_with_the_same_alert_id_and_duration():
    engine = make_engine()
    run_and_settle(
        engine,
        [rows("cpu", RECOVERING, host="a")],
        recovery_args(free_port(), notification_attempts="1"),
    )
    firing, resolved = history(engine)
    assert tags_of(resolved.line)["state"] == "resolved"
    assert tags_of(resolved.line)["alert_id"] == tags_of(firing.line)["alert_id"]
    assert tags_of(resolved.line)["host"] == "a" and tags_of(resolved.line)["rule"] == "count"
    values = fields_of(resolved.line)
    assert values["value"] == "11.0" and values["median"] == "11.0" and values["mad"] == "0.0"
    assert values["lower"] == "11.0" and values["upper"] == "11.0"
    assert values["duration_s"] == "30.0" and "duration_s" not in fields_of(firing.line)
    assert int(resolved.line.split(" ")[2]) == (T0 + 130) * S


# -- repeat control --------------------------------------------------------------------------

# With count 1 every outlier fires. Four 100s after BASE are outliers at T0+90..120 (the band
# widens to [6, 18] and [3, 21] as they fill the window); a fifth would make the median 100.
SUSTAINED = [*BASE, 100, 100, 100, 100]


def repeat_args(port, interval, **extra):
    return args_for(port, mad_thresholds="temp:3:9:1", repeat_interval=interval, **extra)


def test_without_repeat_control_every_firing_is_sent():
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(
            engine,
            [rows("cpu", SUSTAINED, host="a")],
            args_for(notifier.port, mad_thresholds="temp:3:9:1"),
        )
    assert len(notifier.requests) == 4


def test_a_still_firing_alert_repeats_at_most_once_per_interval_of_data_time():
    # sent at T0+90; 100 and 110 are within 25 s of it and held back; 120 is 30 s later: sent
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(
            engine, [rows("cpu", SUSTAINED, host="a")], repeat_args(notifier.port, "25s")
        )
    assert [a["time"] for a in alerts_of(notifier)] == [
        "2023-11-14T22:14:50Z",
        "2023-11-14T22:15:20Z",
    ]
    (withheld,) = [line for line in engine.log_texts("INFO") if "withheld" in line]
    assert "withheld 2 repeat(s) of 1 still-firing alert(s) (repeat_interval=25s)" in withheld
    assert "temp:3:9:1 [host=a]" in withheld and "x2" in withheld
    # held-back repeats are not history: the table holds what was notified, suppressed, resolved
    assert len(history(engine)) == 2


def test_repeat_interval_is_per_alert_id():
    with receiver() as notifier:
        engine = make_engine()
        both = rows("cpu", SUSTAINED, host="a")["rows"] + rows("cpu", SUSTAINED, host="b")["rows"]
        run_and_settle(
            engine, [{"table_name": "cpu", "rows": both}], repeat_args(notifier.port, "1h")
        )
    assert sorted(a["tags"]["host"] for a in alerts_of(notifier)) == ["a", "b"]
    (withheld,) = [line for line in engine.log_texts("INFO") if "withheld" in line]
    assert "withheld 6 repeat(s) of 2 still-firing alert(s)" in withheld


def test_the_withheld_line_stays_one_short_line_for_many_series():
    hosts = [f"h{i}" for i in range(7)]
    batch_rows = [row for host in hosts for row in rows("cpu", SUSTAINED, host=host)["rows"]]
    with receiver() as notifier:
        engine = make_engine()
        args = repeat_args(notifier.port, "1h")
        run_and_settle(engine, [{"table_name": "cpu", "rows": batch_rows}], args)
    assert len(notifier.requests) == 7
    (withheld,) = [line for line in engine.log_texts("INFO") if "withheld" in line]
    assert "withheld 21 repeat(s) of 7 still-firing alert(s)" in withheld
    assert withheld.count(" x3") == 5 and withheld.endswith("and 2 more")


def test_repeat_interval_holds_across_calls():
    with receiver() as notifier:
        engine = make_engine()
        args = repeat_args(notifier.port, "25s")
        for row in rows("cpu", SUSTAINED, host="a")["rows"]:
            run_and_settle(engine, [{"table_name": "cpu", "rows": [row]}], args)
    assert len(notifier.requests) == 2


def test_the_interval_runs_from_the_last_alert_passed_on_delivered_or_not():
    # the notifier is down: T0+90 is passed on and waits; 100 and 110 are held back all the same
    # (the outbox owns retries); 120 is passed on again; both reach the notifier once it is up
    port = free_port()
    engine = make_engine()
    args = repeat_args(
        port, "25s", notification_attempts="1", outbox_backoff="1h", outbox_backoff_max="1h"
    )
    run_and_settle(engine, [rows("cpu", SUSTAINED, host="a")], args)
    (failure,) = engine.log_texts("ERROR")
    assert "2 alert(s) waiting in the outbox" in failure
    assert any("withheld 2 repeat(s)" in line for line in engine.log_texts("INFO"))
    with receiver(port) as notifier:
        skip_backoff(engine)
        assert delivered_and_logged(engine, args)
    assert [alert["time"] for alert in alerts_of(notifier)] == [
        "2023-11-14T22:14:50Z",
        "2023-11-14T22:15:20Z",
    ]


def test_a_recovery_ends_the_repeat_hold():
    # count 1: fires at T0+90; 11 at 100, 110, 120 resolves it (MAD 0 at 120, band [11, 11]);
    # the 100 at 130 is a new alert and is sent although the interval is an hour
    values = [*BASE, 100, 11, 11, 11, 100]
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(
            engine,
            [rows("cpu", values, host="a")],
            repeat_args(notifier.port, "1h", notify_recovery="true"),
        )
    assert [(a["state"], a["time"]) for a in alerts_of(notifier)] == [
        ("firing", "2023-11-14T22:14:50Z"),
        ("resolved", "2023-11-14T22:15:20Z"),
        ("firing", "2023-11-14T22:15:30Z"),
    ]


def test_without_a_recovery_the_hold_lasts_the_interval():
    values = [*BASE, 100, 11, 11, 11, 100]
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(engine, [rows("cpu", values, host="a")], repeat_args(notifier.port, "1h"))
    assert [a["time"] for a in alerts_of(notifier)] == ["2023-11-14T22:14:50Z"]


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"notify_recovery": "maybe"}, "notify_recovery must be true or false"),
        ({"notify_recovery": "true", "recovery_count": "0"}, "recovery_count must be between"),
        ({"repeat_interval": "soon"}, "repeat_interval: invalid duration 'soon'"),
        (
            {"repeat_interval": "-5"},
            "repeat_interval: invalid duration '-5': must be a finite, non-negative",
        ),
    ],
)
def test_bad_lifecycle_arguments_are_clear_configuration_errors(extra, message):
    engine = make_engine()
    run_and_settle(engine, [rows("cpu", RECOVERING, host="a")], args_for(free_port(), **extra))
    (error,) = engine.log_texts("ERROR")
    assert "configuration error" in error and message in error


def test_lifecycle_settings_are_off_by_default_and_read_from_toml(tmp_path):
    seed_args = {k: v for k, v in args_for(1).items() if k != "port_override"}
    default = load_config(seed_args, environ={}).config
    assert (default.notify_recovery, default.recovery_count, default.repeat_interval_ns) == (
        False,
        3,
        0,
    )
    (tmp_path / "mad.toml").write_text(
        "notify_recovery = true\nrecovery_count = 5\nrepeat_interval = 900\n"
        'notification_recovery_text = "ok $alert_id"\n'
    )
    config = load_config(
        {**seed_args, "config_file_path": "mad.toml"}, environ={"PLUGIN_DIR": str(tmp_path)}
    ).config
    assert config.notify_recovery and config.recovery_count == 5
    assert config.repeat_interval_ns == 900 * S and config.recovery_text == "ok $alert_id"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("1h30m", 5400), ("2.5", 2.5), ("'15m'", 900), ("0", 0)]
)
def test_repeat_interval_spellings(text, seconds):
    config = load_config(args_for(1, repeat_interval=text), environ={}).config
    assert config.repeat_interval_ns == seconds * S


def test_recovery_settings_without_notify_recovery_are_warned_about():
    engine = make_engine()
    run_and_settle(engine, [], args_for(free_port(), recovery_count="5"))
    assert any(
        "recovery_count has no effect without notify_recovery=true" in line
        for line in engine.log_texts("WARN")
    )


def test_configuration_line_names_the_lifecycle_settings():
    engine = make_engine()
    args = args_for(free_port(), notify_recovery="yes", recovery_count="4", repeat_interval="90s")
    run_and_settle(engine, [], args)
    (loaded,) = [line for line in engine.log_texts("INFO") if "configuration loaded" in line]
    assert "notify_recovery=true, recovery_count=4, repeat_interval=90s" in loaded


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (250 * 10**6, "250ms"),
        (30 * S, "30s"),
        (2790 * S, "46m30s"),
        (93784 * S, "1d2h3m4s"),
        (7200 * S, "2h"),
    ],
)
def test_human_duration(ns, text):
    assert human_duration(ns) == text


# -- invariants on random streams ------------------------------------------------------------

values_or_gaps = st.lists(
    st.one_of(st.sampled_from([10.0, 11.0, 12.0, 11.0, 100.0]), st.none()), max_size=80
)


@settings(max_examples=150, deadline=None)
@given(values=values_or_gaps, count=st.integers(1, 3), needed=st.integers(1, 4))
def test_recovery_tracking_changes_no_firing_and_resolves_each_alert_once(values, count, needed):
    def run(recovery_count):
        threshold = Threshold("temp", 2, 5, count=count)
        detector = Detector("cpu", [threshold], state_change_count=3, recovery_count=recovery_count)
        rows_ = [{"host": "a", "temp": v, "time": i * S} for i, v in enumerate(values)]
        return detector.process(rows_, ["host"]).alerts

    plain, tracked = run(0), run(needed)
    assert [a for a in tracked if not a.resolved] == plain
    open_since = last_firing = None
    for alert in tracked:
        if alert.resolved:
            # a resolution ends the open alert, at least `needed` points after its last firing
            assert open_since is not None and alert.started_ns == open_since
            assert alert.time_ns - last_firing >= needed * S
            open_since = None
        else:
            last_firing = alert.time_ns
            if not alert.suppressed and open_since is None:
                open_since = alert.time_ns
