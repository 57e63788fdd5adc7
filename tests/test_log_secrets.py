"""No secret used by any test reaches any log line produced during the test session.

The lines come from ``tests/logscan.py`` (every ``influxdb3_local`` log call and Python logging
record of the session), the secrets from ``tests/secrets.py`` (harvested from every plugin call,
or registered by hand). See those modules for how a new test takes part.
"""

import pytest

from madcheck.engine.api import EngineAPI
from madcheck.plugin.calllog import mask
from tests import logscan
from tests.secrets import SECRETS, leaks, paused, register, secret
from tests.support import free_port, make_engine, rows, run_and_settle, run_mad_plugin

PROBE_HOOK = secret("https://hooks.slack.test/services/T0PROBE/B0PROBE/probe-secret-value")


def test_the_collector_sees_every_engine_and_harvests_plugin_arguments():
    EngineAPI(database="anywhere").warn("probe line from a fresh engine")
    assert logscan.LINES[-1].text == "probe line from a fresh engine"
    assert logscan.LINES[-1].test.endswith(
        "test_the_collector_sees_every_engine_and_harvests_plugin_arguments"
    )
    token = "apiv3_probe_token_harvested"
    engine = make_engine()
    args = {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "senders": "slack",
        "slack_webhook_url": PROBE_HOOK,
        "influxdb3_auth_token": token,
        "port_override": str(free_port()),
        "notification_attempts": "1",
        "warm_start": "false",
    }
    run_and_settle(
        engine, [rows("cpu", [10, 12, 11, 13, 9, 11, 12, 10, 11, 100, 100], host="a")], args
    )
    assert token in SECRETS  # harvested from the call, without registering it here
    assert "services/T0PROBE/B0PROBE/probe-secret-value" in SECRETS  # the URL's path alone too
    texts = [line.text for line in logscan.LINES]
    assert any("alert delivery failed" in text for text in texts)


def test_random_input_under_paused_is_not_taken_for_a_secret():
    with paused():
        run_mad_plugin(
            make_engine(), [], {"measurement": "x", "slack_webhook_url": "random-words-here"}
        )
    assert "random-words-here" not in SECRETS


def test_the_scan_finds_a_secret_anywhere_in_a_line():
    register("+15550123456")
    found = leaks(["sms to 15550123456 failed", "sms to ****3456 failed"], SECRETS)
    assert found == [("15550123456", "sms to 15550123456 failed")]


def test_no_secret_in_any_log_line_of_the_session():
    lines = logscan.LINES
    assert lines, "the collector saw no log line at all: is tests/conftest.py installed?"
    found = leaks([f"{line.test}: {line.text}" for line in lines], SECRETS)
    if found:  # the report masks what it found: a failing scan must not print the secret again
        report = "\n".join(line.replace(value, mask(value)) for value, line in found[:20])
        pytest.fail(f"{len(found)} secret(s) in log lines:\n{report}", pytrace=False)
