"""Severity levels (issue 15): parsing, routing, inhibition and escalation through the plugin.

Bands follow test_alert_lifecycle's arithmetic: BASE (median 11, MAD 1, k=3: band 8..14), rows
10 s apart from T0, so the n-th value after BASE is at T0 + 90 s + 10 n s.
"""

import pytest

from madcheck.config.settings import ConfigError, load_config
from madcheck.config.thresholds import parse_thresholds
from madcheck.route.inhibit import Inhibitor
from tests.support import make_engine, receiver, rows, run_and_settle
from tests.test_alert_history import history, tags_of
from tests.test_plugin_writes import BASE, HOOK, args_for

DISCORD = "https://discord.test/api/webhooks/1/critical"
SUSTAINED = [*BASE, 100, 100, 100, 100]
# a warning at every outlier, a critical one at every third
ESCALATING = "temp:3:9:1@temp:3:9:3:critical"


def levels_of(notifier):
    return [(r.body["alert"]["severity"], r.body["alert"]["time"]) for r in notifier.requests]


def history_states(engine):
    return [(tags_of(w.line)["severity"], tags_of(w.line)["state"]) for w in history(engine)]


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "level"),
    [
        ("temp:3:9:2", "temp", "warning"),
        ("temp:3:9:2:critical", "temp", "critical"),
        ("temp:3:9:2m:info", "temp", "info"),
        ("temp:3:9:2:CRITICAL", "temp", "critical"),
        # the field may hold colons: the split is from the right, a level is known by its word
        ("a:b:3:9:2", "a:b", "warning"),
        ("a:b:3:9:2:critical", "a:b", "critical"),
        ("critical:3:9:2", "critical", "warning"),
    ],
)
def test_a_trailing_level_word_is_the_level(text, field, level):
    (threshold,), problems = parse_thresholds(text)
    assert problems == [] and (threshold.field, threshold.severity) == (field, level)


def test_the_toml_list_form_takes_the_level_as_fifth_element():
    thresholds, problems = parse_thresholds([["temp", 3, 9, 2, "critical"], ["load", 2, 5, "1m"]])
    assert problems == []
    assert [t.severity for t in thresholds] == ["critical", "warning"]


@pytest.mark.parametrize("bad", [["temp", 3, 9, 2, "urgent"], ["temp", 3, 9, 2, 7]])
def test_an_unknown_level_is_reported_and_the_condition_skipped(bad):
    thresholds, (problem,) = parse_thresholds([bad])
    assert thresholds == [] and "level must be one of info, warning, critical" in problem


def test_a_condition_repeated_at_another_level_is_skipped_naming_the_first():
    thresholds, (problem,) = parse_thresholds("temp:3:9:2@temp:3:9:2:critical")
    assert len(thresholds) == 1 and "the same condition as temp:3:9:2" in problem


def test_a_level_of_a_nonsense_string_is_not_taken_for_a_threshold():
    # the last part is neither a level nor a threshold: a clear problem, not a field "temp:3:9"
    thresholds, (problem,) = parse_thresholds("temp:3:9:2:urgent")
    assert thresholds == [] and "skipped" in problem


# -- routing ---------------------------------------------------------------------------------


def test_levels_route_to_their_own_senders_and_senders_serves_the_rest():
    config = load_config(
        {
            "measurement": "cpu",
            "mad_thresholds": "temp:3:9:2:info@temp:3:9:5:critical",
            "senders": "slack",
            "senders_critical": "discord.slack",
            "slack_webhook_url": HOOK,
            "discord_webhook_url": DISCORD,
        },
        {},
    ).config
    assert config.noise.senders_for("info") == ("slack",)
    assert config.noise.senders_for("warning") == ("slack",)
    assert config.noise.senders_for("critical") == ("discord", "slack")


def test_a_level_left_without_a_usable_channel_is_a_config_error():
    with pytest.raises(ConfigError, match="critical alerts would reach no channel"):
        load_config(
            {
                "measurement": "cpu",
                "mad_thresholds": "temp:3:9:5:critical",
                "senders": "slack",
                "senders_critical": "discord",  # no discord_webhook_url: dropped
                "slack_webhook_url": HOOK,
            },
            {},
        )


def test_severity_reaches_the_text_the_payload_the_route_and_the_history():
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(
            notifier.port,
            mad_thresholds="temp:3:9:2:critical",
            senders_critical="discord",
            discord_webhook_url=DISCORD,
            notification_count_text="[$severity] $field on $tags",
        )
        run_and_settle(engine, [rows("cpu", [*BASE, 100, 100], host="a")], args)
    (request,) = notifier.requests
    assert request.body["notification_text"] == "[critical] temp on host=a"
    assert request.body["alert"]["severity"] == "critical"
    assert set(request.body["senders_config"]) == {"discord"}
    assert history_states(engine) == [("critical", "firing")]


def test_without_levels_alerts_are_warnings_and_go_to_senders():
    with receiver() as notifier:
        engine = make_engine()
        run_and_settle(engine, [rows("cpu", [*BASE, 100, 100], host="a")], args_for(notifier.port))
    (request,) = notifier.requests
    assert request.body["alert"]["severity"] == "warning"
    assert set(request.body["senders_config"]) == {"slack"}
    # the alerts table's rows stay as they were before levels existed
    ((write),) = history(engine)
    assert "severity" not in tags_of(write.line)


# -- one incident at its highest level -------------------------------------------------------


def test_a_point_firing_two_levels_sends_only_the_higher_and_lower_ones_wait_while_it_fires():
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(notifier.port, mad_thresholds=ESCALATING)
        run_and_settle(engine, [rows("cpu", SUSTAINED, host="a")], args)
    # warnings at the 1st and 2nd outlier; the 3rd fires both: only critical; the 4th warning
    # is inhibited while the critical alert is open
    assert levels_of(notifier) == [
        ("warning", "2023-11-14T22:14:50Z"),
        ("warning", "2023-11-14T22:15:00Z"),
        ("critical", "2023-11-14T22:15:10Z"),
    ]
    assert history_states(engine) == [
        ("warning", "firing"),
        ("warning", "firing"),
        ("warning", "inhibited"),
        ("critical", "firing"),
        ("warning", "inhibited"),
    ]
    assert any("2 alert(s) inhibited" in line for line in engine.log_texts("INFO"))


def test_an_escalation_to_critical_is_sent_within_repeat_interval():
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(notifier.port, mad_thresholds=ESCALATING, repeat_interval="1h")
        run_and_settle(engine, [rows("cpu", SUSTAINED, host="a")], args)
    assert levels_of(notifier) == [
        ("warning", "2023-11-14T22:14:50Z"),
        ("critical", "2023-11-14T22:15:10Z"),
    ]


def test_warnings_are_sent_again_once_the_critical_alert_recovered():
    # 100 x3 (critical at the third), 11 x3 (recovery_count=3 ends both), then 100: a warning
    values = [*BASE, 100, 100, 100, 11, 11, 11, 100]
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(notifier.port, mad_thresholds=ESCALATING)
        run_and_settle(engine, [rows("cpu", values, host="a")], args)
    assert [level for level, _ in levels_of(notifier)] == [
        "warning",
        "warning",
        "critical",
        "warning",
    ]
    # without notify_recovery the recoveries that ended the incident are neither sent nor rows
    assert "resolved" not in {state for _, state in history_states(engine)}


def test_inhibition_is_per_series():
    both = (
        rows("cpu", SUSTAINED, host="a")["rows"] + rows("cpu", [*BASE, 100, 100], host="b")["rows"]
    )
    with receiver() as notifier:
        engine = make_engine()
        args = args_for(notifier.port, mad_thresholds=ESCALATING)
        run_and_settle(engine, [{"table_name": "cpu", "rows": both}], args)
    hosts = [
        (r.body["alert"]["tags"]["host"], r.body["alert"]["severity"]) for r in notifier.requests
    ]
    assert sorted(hosts) == sorted(
        [("a", "warning"), ("a", "warning"), ("a", "critical"), ("b", "warning"), ("b", "warning")]
    )


def test_the_recovery_of_an_alert_that_was_only_ever_inhibited_is_inhibited_too():
    from madcheck.detect.detector import Detector

    thresholds, _ = parse_thresholds("temp:3:9:2@temp:3:9:1:critical")
    detector = Detector("cpu", thresholds, 0, 3)
    batch = rows("cpu", [*BASE, 100, 100, 11, 11, 11], host="a")["rows"]
    fates = [
        (a.threshold.severity, a.state, held)
        for a, held in Inhibitor().sort(detector.process(batch, ["host"]).alerts)
    ]
    assert fates == [
        ("critical", "firing", False),
        ("warning", "firing", True),  # the same point fired critical too
        ("critical", "firing", False),
        ("warning", "resolved", True),  # no one heard of it: no recovery either
        ("critical", "resolved", False),
    ]


def test_missing_data_alerts_go_to_senders_not_to_a_levels_own_channels():
    from datetime import UTC, datetime

    from madcheck.engine.api import EngineAPI
    from madcheck.engine.cache import TriggerCache
    from madcheck.engine.loader import load_entry_point
    from madcheck.plugin.delivery import wait_for_sender
    from tests.datafusion_engine import DataFusionQueries
    from tests.support import DELIVERY_WAIT_S, MAD_PLUGIN

    t0 = 1_700_000_000 * 10**9
    queries = DataFusionQueries()
    queries.write_lp(f"cpu,host=a temp=1 {t0}")
    engine = EngineAPI(database="mydb", query_handler=queries, cache=TriggerCache())
    with receiver() as notifier:
        args = {
            **args_for(notifier.port),
            "missing_after": "5m",
            "senders_critical": "discord",
            "discord_webhook_url": DISCORD,
        }
        call_time = datetime.fromtimestamp(t0 / 1e9 + 600, tz=UTC)
        load_entry_point(MAD_PLUGIN, "process_scheduled_call")(engine, call_time, args)
        assert wait_for_sender(engine, DELIVERY_WAIT_S)
    (request,) = notifier.requests
    assert request.body["alert"]["rule"] == "missing"
    assert set(request.body["senders_config"]) == {"slack"}
