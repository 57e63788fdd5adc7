"""The two plugins together: an outlier written to the MAD trigger ends up as a Slack message.

The MAD plugin posts its alert over HTTP to a loopback engine route serving the notifier
plugin (each request runs the plugin file afresh, as the engine does), which posts on to the
stand-in Slack. Nothing is faked in between.
"""

from __future__ import annotations

from typing import Any

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point
from tests import standins
from tests.notifier_calls import FAST, PLUGIN
from tests.support import delivered_and_logged, make_engine, rows, run_mad_plugin, tried_and_logged

TOKEN = "apiv3_e2e_secret_token"
BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]
EXPECTED_TEXT = (
    "MAD count alert: Field temp in cpu outlier for 2 consecutive points. Tags: host=server1"
)


def notifier_plugin(*call: Any) -> Any:
    return load_entry_point(PLUGIN, "process_request")(*call)


def mad_args(port: int, **senders: str) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "influxdb3_auth_token": TOKEN,
        "port_override": str(port),
        "retry_backoff": "0",
        "notification_timeout": "5s",
        **senders,
    }


def outliers() -> list[dict]:
    return [rows("cpu", [*BASE, 100, 100], host="server1")]


def test_an_outlier_becomes_a_slack_message_through_both_plugins():
    notifier_engine = EngineAPI(database="mydb", trigger_name="notify")
    with (
        standins.slack() as slack,
        standins.webhook() as hook,
        standins.request_trigger(notifier_plugin, notifier_engine, FAST, TOKEN) as endpoint,
    ):
        port = int(endpoint.base_url.rsplit(":", 1)[1])
        args = mad_args(
            port, senders="slack.http", slack_webhook_url=slack.url, http_webhook_url=hook.url
        )
        mad_engine = make_engine()
        run_mad_plugin(mad_engine, outliers(), args)
        assert delivered_and_logged(mad_engine, args)

    assert [sent.json() for sent in slack.requests] == [{"text": EXPECTED_TEXT}]
    [forwarded] = hook.requests
    assert forwarded.json()["notification_text"] == EXPECTED_TEXT
    alert = forwarded.json()["alert"]
    assert (alert["table"], alert["field"], alert["value"], alert["median"]) == (
        "cpu",
        "temp",
        100,
        11,
    )
    assert notifier_engine.log_texts("INFO") == [
        "notifier: slack delivered (HTTP 200)",
        "notifier: http delivered (HTTP 200)",
    ]
    assert any("alert sent" in line for line in mad_engine.log_texts("INFO"))
    assert not mad_engine.log_texts("ERROR")


def test_a_slack_refusal_travels_back_to_the_mad_plugin_log():
    notifier_engine = EngineAPI(database="mydb", trigger_name="notify")
    with (
        standins.slack() as slack,
        standins.request_trigger(notifier_plugin, notifier_engine, FAST, TOKEN) as endpoint,
    ):
        slack.script(*[standins.slack_invalid_payload()] * 3)
        port = int(endpoint.base_url.rsplit(":", 1)[1])
        args = mad_args(port, senders="slack", slack_webhook_url=slack.url)
        args["notification_attempts"] = "1"  # one trip; how the MAD client retries is its own test
        mad_engine = make_engine()
        run_mad_plugin(mad_engine, outliers(), args)
        assert tried_and_logged(mad_engine, args)

    assert len(slack.requests) == 1  # a 400 from Slack is permanent: the notifier does not retry
    assert notifier_engine.log_texts("WARN")[1:] == [  # [0]: it runs without an allow-list
        "notifier: slack failed: HTTP 400 (Slack invalid_payload)"
    ]
    errors = mad_engine.log_texts("ERROR")
    assert len(errors) == 1
    assert "slack (HTTP 400 (Slack invalid_payload))" in errors[0]
    every_log = [r.log_text for r in (*notifier_engine.logs, *mad_engine.logs)]
    assert not [line for line in every_log if slack.url in line or TOKEN in line]
