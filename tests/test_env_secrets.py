"""Secrets named by environment variable (``env:NAME``) instead of stored in trigger arguments.

InfluxDB 3 shows trigger arguments to every token holder, so each secret argument can name a
server environment variable instead. These tests use the form end to end, abuse the names and
values, and check that no library logger prints a secret at DEBUG level.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
import requests

from madcheck.config.settings import ConfigError, load_config
from madcheck.notify.allowlist import HostAllowList
from madcheck.notify.channels import SENDERS
from madcheck.notify.channels.base import Message, SendContext
from madcheck.notify.channels.guard import _FILTER, hide_paths_in_urllib3_logs
from madcheck.notify.retry import RetryPolicy
from tests import standins
from tests.notifier_calls import (
    FAST,
    FROM_NUMBER,
    TO_NUMBER,
    TWILIO_SID,
    TWILIO_TOKEN,
    call,
    request,
)
from tests.secrets import secret
from tests.support import make_engine, rows, run_mad_plugin

BASE = {"measurement": "cpu", "mad_thresholds": "temp:3:9:2"}
SLACK_HOOK = secret("http://127.0.0.1:9/services/T0ENV/B0ENV/env-slack-secret")
TOKEN = secret("apiv3_env_token_0123456789")
HEADERS = secret(
    base64.b64encode(json.dumps({"X-Api-Key": "env-header-secret-1"}).encode()).decode()
)
ENVIRON = {
    "SLACK_WEBHOOK_URL": SLACK_HOOK,
    "MAD_TOKEN": TOKEN,
    "HOOK_URL": "http://127.0.0.1:9/hooks/alerts",
    "HOOK_HEADERS": HEADERS,
    "TWILIO_SID": TWILIO_SID,
    "TWILIO_TOKEN": TWILIO_TOKEN,
    "ALERT_TO": TO_NUMBER,
}


def test_the_mad_trigger_reads_every_secret_from_the_environment():
    loaded = load_config(
        {
            **BASE,
            "senders": "slack.http.sms",
            "slack_webhook_url": "env:SLACK_WEBHOOK_URL",
            "http_webhook_url": "'env:HOOK_URL'",  # shell quotes survive: still a reference
            "http_headers": "env:HOOK_HEADERS",
            "influxdb3_auth_token": "env:MAD_TOKEN",
            "twilio_from_number": FROM_NUMBER,
            "twilio_to_number": "env:ALERT_TO",  # the SID comes from TWILIO_SID
        },
        environ=ENVIRON,
    )
    senders = loaded.config.senders_config
    assert senders["slack"] == {"slack_webhook_url": SLACK_HOOK}
    assert senders["http"] == {"http_webhook_url": ENVIRON["HOOK_URL"], "http_headers": HEADERS}
    assert senders["sms"]["twilio_to_number"] == TO_NUMBER
    assert senders["sms"]["twilio_sid"] == TWILIO_SID
    assert loaded.config.delivery.token == TOKEN


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("env:", "must be followed by the name of an environment variable"),
        ("env:  ", "must be followed by the name of an environment variable"),
        ("env:1ABC", "must be followed by the name"),
        ("env:A B", "must be followed by the name"),
        ("env:$(id)", "must be followed by the name"),
        ("env:../etc/passwd", "must be followed by the name"),
        ("env:MC_NOT_SET_ANYWHERE", "slack_webhook_url=env:MC_NOT_SET_ANYWHERE: the environment"),
        ("env:EMPTY", "EMPTY is not set (or empty)"),
        ("env:PATH", "slack_webhook_url is not an http(s) URL"),  # a non-secret: allowed, not a URL
        ("env:NEWLINE_URL", "slack_webhook_url holds white space, a control character"),
        ("env:NESTED", "another env: reference; they do not nest"),
    ],
)
def test_bad_references_are_clear_errors_naming_argument_and_variable_never_a_value(value, message):
    environ = {
        "PATH": "/usr/local/bin:/usr/bin",
        "EMPTY": "",
        "NEWLINE_URL": "https://hooks.slack.com/x\r\nX-Injected: 1",
        "NESTED": "env:PATH",
    }
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as bad:
        load_config({**BASE, "senders": "slack", "slack_webhook_url": value}, environ=environ)
    text = str(bad.value)
    assert "slack_webhook_url" in text
    assert "/usr/bin" not in text and "Injected" not in text and "hooks.slack.com" not in text


def test_a_token_with_a_newline_from_the_environment_is_refused():
    with pytest.raises(ConfigError, match="influxdb3_auth_token") as bad:
        load_config(
            {
                **BASE,
                "senders": "slack",
                "slack_webhook_url": SLACK_HOOK,
                "influxdb3_auth_token": "env:T",
            },
            environ={"T": "apiv3_abc\nX-Injected: 1"},
        )
    assert "Injected" not in str(bad.value)


def test_non_secret_arguments_are_never_resolved():
    loaded = load_config(
        {
            "measurement": "env:PATH",
            "mad_thresholds": "temp:3:9:2",
            "senders": "slack",
            "slack_webhook_url": SLACK_HOOK,
        },
        environ={"PATH": "/usr/bin"},
    )
    assert loaded.config.measurement == "env:PATH"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (
            {
                "senders": "http",
                "http_webhook_url": "https://attacker.test/x",
                "http_headers": "env:HOOK_HEADERS",
            },
            "http_headers",
        ),
        (
            {
                "senders": "sms",
                "twilio_sid": "AC" + "1" * 32,
                "twilio_token": "t" * 32,
                "twilio_from_number": FROM_NUMBER,
                "twilio_to_number": "env:MAD_TOKEN",
            },
            "twilio_to_number",
        ),
    ],
)
def test_a_secret_from_the_environment_cannot_be_sent_where_a_stranger_says(arguments, named):
    with pytest.raises(ConfigError, match=named) as refused:
        load_config({**BASE, **arguments}, environ=ENVIRON)
    assert TOKEN not in str(refused.value) and "env-header-secret" not in str(refused.value)


def test_the_notifier_resolves_references_in_the_request(monkeypatch):
    with standins.slack() as slack, standins.twilio(TWILIO_SID, TWILIO_TOKEN) as twilio:
        monkeypatch.setenv("MC_SLACK_URL", slack.url)
        monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.base_url)
        monkeypatch.setenv("MC_TWILIO_SID", TWILIO_SID)
        monkeypatch.setenv("MC_TWILIO_TOKEN", TWILIO_TOKEN)
        monkeypatch.setenv("MC_TO", TO_NUMBER)
        sms = {
            "twilio_sid": "env:MC_TWILIO_SID",
            "twilio_token": "env:MC_TWILIO_TOKEN",
            "twilio_from_number": FROM_NUMBER,
            "twilio_to_number": "env:MC_TO",
        }
        answer, status = call(
            request(slack={"slack_webhook_url": "env:MC_SLACK_URL"}, sms=sms), FAST
        )

        assert status == 200, answer
        assert slack.requests[0].json() == {"text": "MAD count alert: temp in cpu"}
        assert twilio.requests[0].form()["To"] == TO_NUMBER

        missing, _ = call(request(slack={"slack_webhook_url": "env:MC_UNSET_VARIABLE"}), FAST)
        assert missing["results"]["slack"] == {
            "ok": False,
            "reason": "slack_webhook_url=env:MC_UNSET_VARIABLE: the environment variable "
            "MC_UNSET_VARIABLE is not set (or empty) in the server's environment",
        }
        stolen, _ = call(
            request(sms={**sms, "twilio_sid": "AC" + "2" * 32, "twilio_token": "attacker-token"}),
            FAST,
        )
        assert stolen["results"]["sms"]["ok"] is False
        assert (
            "twilio_to_number may come from the environment only"
            in stolen["results"]["sms"]["reason"]
        )
        assert len(twilio.requests) == 1


def test_a_changed_variable_rebuilds_the_config(monkeypatch):
    with standins.webhook() as first, standins.webhook() as second:
        monkeypatch.setenv("MC_HOOK", first.url)
        engine = make_engine()
        args = {**BASE, "senders": "http", "http_webhook_url": "env:MC_HOOK", "warm_start": "false"}
        run_mad_plugin(engine, [rows("cpu", [1], host="a")], args)
        monkeypatch.setenv("MC_HOOK", second.url)
        run_mad_plugin(engine, [rows("cpu", [1], host="a")], args)
    loads = [line for line in engine.log_texts("INFO") if "configuration loaded" in line]
    assert len(loads) == 2


def test_a_missing_variable_is_logged_once_naming_argument_and_variable(monkeypatch):
    monkeypatch.delenv("MC_MISSING_HOOK", raising=False)
    engine = make_engine()
    args = {**BASE, "senders": "http", "http_webhook_url": "env:MC_MISSING_HOOK"}
    for _ in range(3):
        run_mad_plugin(engine, [rows("cpu", [1], host="a")], args)
    errors = engine.log_texts("ERROR")
    assert len(errors) == 1
    assert "http_webhook_url=env:MC_MISSING_HOOK" in errors[0]


# -- DEBUG logging of libraries --------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def debug_everything():
    """Every logger at DEBUG, every record collected, as an operator debugging would set it."""
    handler = _Records()
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    levels = [(logger, logger.level) for logger in loggers]
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in levels:
            logger.setLevel(level)


def _send_every_channel() -> list[str]:
    """Slack, Discord and Twilio (secrets in their paths) and a webhook, over real sockets."""
    context = SendContext(RetryPolicy(attempts=1), HostAllowList(None), {}, sleep=lambda _: None)
    secrets = []
    with (
        standins.slack() as slack,
        standins.discord() as discord,
        standins.twilio(TWILIO_SID, TWILIO_TOKEN) as twilio,
    ):
        slack_url = secret(slack.base_url + "/services/T0DBG/B0DBG/debug-slack-secret")
        discord_url = secret(discord.base_url + "/api/webhooks/1234/debug-discord-secret")
        context = SendContext(
            context.policy,
            context.allowed_hosts,
            {"TWILIO_API_BASE_URL": twilio.base_url},
            sleep=lambda _: None,
        )
        configs = {
            "slack": {"slack_webhook_url": slack_url},
            "discord": {"discord_webhook_url": discord_url},
            "sms": {
                "twilio_sid": TWILIO_SID,
                "twilio_token": TWILIO_TOKEN,
                "twilio_from_number": FROM_NUMBER,
                "twilio_to_number": TO_NUMBER,
            },
        }
        for channel, config in configs.items():
            with requests.Session() as session:
                delivery = SENDERS[channel](Message("debug probe"), config, session, context)
                assert delivery.ok, (channel, delivery.reason)
        secrets += ["debug-slack-secret", "T0DBG/B0DBG", "debug-discord-secret", TWILIO_SID]
    return secrets


def test_no_library_logger_prints_a_secret_at_debug_level(debug_everything):
    secrets = _send_every_channel()
    lines = debug_everything.texts
    assert any(line.startswith("urllib3.connectionpool") for line in lines)  # it did log
    leaked = [line for line in lines if any(value in line for value in secrets)]
    assert leaked == []


def test_the_filter_is_what_keeps_urllib3_from_printing_paths():
    """The same request logged with and without the filter (kept away from the session scan)."""
    logger = logging.getLogger("urllib3.connectionpool")
    records: list[str] = []

    class Local(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    local = Local(level=logging.DEBUG)
    level, logger.propagate = logger.level, False
    logger.addHandler(local)
    logger.setLevel(logging.DEBUG)
    try:
        with standins.slack() as slack:
            for filtered in (False, True):
                if not filtered:
                    logger.removeFilter(_FILTER)
                hide_paths_in_urllib3_logs() if filtered else None
                with requests.Session() as session:
                    session.post(
                        slack.base_url + f"/services/T/B/path-{filtered}", json={"text": "x"}
                    )
    finally:
        hide_paths_in_urllib3_logs()
        logger.removeHandler(local)
        logger.propagate = True
        logger.setLevel(level)
    assert any("/services/T/B/path-False" in line for line in records)
    assert not any("path-True" in line for line in records)
    assert any('"POST /... HTTP/1.1" 200' in line for line in records)
