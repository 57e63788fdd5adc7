"""The notifier endpoint's contract: what it accepts, how it answers, where it may post."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point
from madcheck.notify import channels
from madcheck.notify.allowlist import HostAllowList
from madcheck.notify.settings import NotifierSettings
from tests import standins
from tests.notifier_calls import FAST, PLUGIN, call, encoded_headers, request


def malformed_bodies(url: str) -> dict[str, tuple[bytes, str]]:
    """Bad requests, each naming a usable Slack URL that must nevertheless not be used."""
    slack = {"slack": {"slack_webhook_url": url}}

    def encode(document: object) -> bytes:
        return json.dumps(document).encode()

    return {
        "empty body": (b"", "empty"),
        "not json": (b"{'notification_text': 'hi'}", "not valid JSON"),
        "not utf-8": (b'{"notification_text": "\xff"}', "not valid JSON"),
        "a list": (encode([slack]), "JSON object"),
        "no text": (encode({"senders_config": slack}), "notification_text"),
        "text not a string": (
            encode({"notification_text": 5, "senders_config": slack}),
            "notification_text",
        ),
        "blank text": (
            encode({"notification_text": "  ", "senders_config": slack}),
            "notification_text",
        ),
        "no senders": (encode({"notification_text": "hi"}), "senders_config"),
        "senders a list": (
            encode({"notification_text": "hi", "senders_config": [slack]}),
            "senders_config",
        ),
        "no sender named": (encode({"notification_text": "hi", "senders_config": {}}), "object"),
        "sender config not an object": (
            encode({"notification_text": "hi", "senders_config": {**slack, "discord": url}}),
            "discord",
        ),
        "alert not an object": (
            encode({"notification_text": "hi", "senders_config": slack, "alert": "a"}),
            "alert",
        ),
    }


@pytest.mark.parametrize("case", list(malformed_bodies("http://x")))
def test_malformed_requests_get_400_with_a_clear_message_and_nothing_is_sent(case):
    engine = EngineAPI(database="alerts")
    with standins.slack() as slack:
        body, mentions = malformed_bodies(slack.url)[case]
        answer, status = call(body, FAST, engine)

    assert status == 400
    assert answer["status"] == "failed"
    assert answer["results"] == {}
    assert mentions in answer["error"]
    assert slack.requests == []
    assert any("rejected request" in line for line in engine.log_texts("WARN"))


def test_unknown_sender_is_reported_and_the_others_still_sent():
    with standins.slack() as slack:
        body = request(slack={"slack_webhook_url": slack.url}, pagerduty={"key": "x"})
        answer, status = call(body, FAST)

    assert status == 502
    assert answer["status"] == "partial"
    assert answer["results"]["slack"] == {"ok": True, "reason": "HTTP 200"}
    pagerduty = answer["results"]["pagerduty"]
    assert pagerduty["ok"] is False
    assert pagerduty["reason"].startswith("unknown sender")
    assert "slack" in pagerduty["reason"]
    assert len(slack.requests) == 1


def test_answer_lists_senders_in_request_order_and_says_failed_when_none_worked():
    with standins.slack() as slack, standins.discord() as discord:
        slack.script(standins.slack_invalid_payload())
        discord.script(standins.server_error(), standins.server_error(), standins.server_error())
        body = request(
            discord={"discord_webhook_url": discord.url}, slack={"slack_webhook_url": slack.url}
        )
        answer, status = call(body, FAST)

    assert status == 502
    assert answer["status"] == "failed"
    assert list(answer["results"]) == ["discord", "slack"]


def test_successes_are_logged_as_info_and_failures_as_warnings():
    engine = EngineAPI(database="alerts")
    with standins.slack() as slack, standins.discord() as discord:
        discord.script(standins.slack_invalid_payload())
        body = request(
            slack={"slack_webhook_url": slack.url}, discord={"discord_webhook_url": discord.url}
        )
        call(body, FAST, engine)

    assert engine.log_texts("INFO") == ["notifier: slack delivered (HTTP 200)"]
    warnings = engine.log_texts("WARN")
    assert warnings[1:] == ["notifier: discord failed: HTTP 400"]
    assert "running without allowed_webhook_hosts" in warnings[0]


URL = "use the stand-in's URL"


@pytest.mark.parametrize(
    ("problem", "config"),
    [
        ("missing slack_webhook_url", {}),
        ("slack_webhook_url must be a string", {"slack_webhook_url": 42}),
        ("slack_webhook_url is not an http(s) URL", {"slack_webhook_url": "file:///etc/passwd"}),
        ("slack_webhook_url is not an http(s) URL", {"slack_webhook_url": "hooks.slack.com/x"}),
        (
            "slack_webhook_url is not a valid URL (bad host or port)",
            {"slack_webhook_url": "http://h:99999/x"},
        ),
        (
            "slack_headers is not base64 of a JSON object",
            {"slack_webhook_url": URL, "slack_headers": "%%%"},
        ),
        (
            "slack_headers is not base64 of a JSON object",
            {"slack_webhook_url": URL, "slack_headers": encoded_headers(["X-A"])},
        ),
        (
            "slack_headers holds a header that is not a printable string",
            {"slack_webhook_url": URL, "slack_headers": encoded_headers({"X-A": "a\r\nB: c"})},
        ),
        (
            "slack_headers holds a header that is not a printable string",
            {"slack_webhook_url": URL, "slack_headers": encoded_headers({"X-Number": 5})},
        ),
    ],
)
def test_bad_sender_arguments_fail_that_sender_only(problem, config):
    with standins.slack() as slack, standins.webhook() as hook:
        config = {name: slack.url if value == URL else value for name, value in config.items()}
        answer, _ = call(request(slack=config, http={"http_webhook_url": hook.url}), FAST)

    assert answer["results"]["slack"] == {"ok": False, "reason": problem}
    assert answer["results"]["http"]["ok"] is True
    assert slack.requests == []


# -- the host allow-list -------------------------------------------------------------------------


def test_allow_list_refuses_unlisted_hosts_before_any_request():
    with standins.slack() as slack, standins.webhook() as hook:
        elsewhere = hook.url.replace("127.0.0.1", "localhost")
        body = request(slack={"slack_webhook_url": slack.url}, http={"http_webhook_url": elsewhere})
        answer, status = call(body, {**FAST, "allowed_webhook_hosts": "hooks.slack.com; 127.0.0.1"})

    assert status == 502
    assert answer["results"]["slack"]["ok"] is True
    assert answer["results"]["http"] == {
        "ok": False,
        "reason": "http_webhook_url names a host that is not in allowed_webhook_hosts",
    }
    assert hook.requests == []


def test_allow_list_entry_with_a_port_allows_only_that_port():
    with standins.slack() as slack, standins.discord() as discord:
        slack_port = slack.base_url.rsplit(":", 1)[1]
        body = request(
            slack={"slack_webhook_url": slack.url}, discord={"discord_webhook_url": discord.url}
        )
        answer, _ = call(body, {**FAST, "allowed_webhook_hosts": f"127.0.0.1:{slack_port}"})

    assert answer["results"]["slack"]["ok"] is True
    assert answer["results"]["discord"]["ok"] is False
    assert discord.requests == []


@pytest.mark.parametrize(
    ("allowed", "url", "verdict"),
    [
        ("hooks.slack.com", "https://hooks.slack.com/services/T/B/x", True),
        ("HOOKS.slack.com", "https://hooks.SLACK.com/services/T/B/x", True),
        ("hooks.slack.com", "https://hooks.slack.com.evil.test/x", False),
        ("hooks.slack.com", "https://evilhooks.slack.com/x", False),
        ("*.example.com", "https://alerts.example.com/x", True),
        ("*.example.com", "https://deep.alerts.example.com/x", True),
        ("*.example.com", "https://example.com/x", False),
        ("*.example.com", "https://badexample.com/x", False),
        ("discord.com:443", "https://discord.com/api/webhooks/1/t", True),
        ("discord.com:443", "http://discord.com/api/webhooks/1/t", False),
        ("[::1]:8080", "http://[::1]:8080/x", True),
        ("a.test b.test", "https://b.test/x", True),
        ("hooks.slack.com", "https://user@hooks.slack.com/x", False),
        ("hooks.slack.com", "https://hooks.slack.com@evil.test/x", False),
    ],
)
def test_allow_list_matching(allowed, url, verdict):
    assert HostAllowList.parse(allowed).allows(url) is verdict


@pytest.mark.parametrize("entry", ["", " ; ", "host/path", "*.", "a.*.com", "host:port", "u@host"])
def test_unreadable_allow_lists_are_refused(entry):
    with pytest.raises(ValueError, match="allowed_webhook_hosts"):
        HostAllowList.parse(entry)


# -- trigger arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"retry_attempts": "three"}, "retry_attempts"),
        ({"retry_attempts": "0"}, "retry_attempts"),
        ({"retry_backoff": "4s..1s"}, "retry_backoff"),
        ({"retry_backoff": "fast"}, "retry_backoff"),
        ({"request_timeout": "0"}, "request_timeout"),
        ({"send_deadline": "soon"}, "send_deadline"),
        ({"allowed_webhook_hosts": ""}, "allowed_webhook_hosts"),
    ],
)
def test_bad_trigger_arguments_answer_500_naming_the_argument(args, named):
    engine = EngineAPI(database="alerts")
    with standins.slack() as slack:
        answer, status = call(request(slack={"slack_webhook_url": slack.url}), args, engine)

    assert status == 500
    assert named in answer["error"]
    assert slack.requests == []
    assert any(named in line for line in engine.log_texts("ERROR"))


def test_bare_numbers_are_seconds_as_in_the_mad_trigger():
    policy = NotifierSettings.from_args(
        {"request_timeout": "10", "send_deadline": "2.5", "retry_after_cap": "0"}
    ).policy
    assert (policy.timeout, policy.deadline, policy.retry_after_cap) == (10.0, 2.5, 0.0)


def test_trigger_arguments_are_read_into_the_policy():
    settings_ = NotifierSettings.from_args(
        {
            "retry_attempts": "5",
            "retry_backoff": "250ms..2s",
            "retry_after_cap": "1m",
            "request_timeout": "3s",
            "send_deadline": "45s",
        }
    )
    policy = settings_.policy
    assert (policy.attempts, policy.backoff, policy.retry_after_cap) == (5, (0.25, 2.0), 60.0)
    assert (policy.timeout, policy.deadline) == (3.0, 45.0)
    assert NotifierSettings.from_args({"retry_backoff": "2s"}).policy.backoff == (2.0, 2.0)


def test_defaults_follow_the_seed_three_attempts_and_allow_any_host():
    settings_ = NotifierSettings.from_args(None)
    assert settings_.policy.attempts == 3
    assert settings_.allowed_hosts.allows("https://hooks.slack.com/services/x")


def test_unknown_trigger_arguments_are_warned_about():
    engine = EngineAPI(database="alerts")
    with standins.slack() as slack:
        _, status = call(
            request(slack={"slack_webhook_url": slack.url}), {**FAST, "retry_atempts": "2"}, engine
        )

    assert status == 200
    assert "notifier: ignoring unknown trigger argument 'retry_atempts'" in engine.log_texts("WARN")


# -- the plugin file -----------------------------------------------------------------------------


def test_plugin_file_without_madcheck_answers_500_saying_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "madcheck.plugin.notifier", None)  # import now fails
    engine = EngineAPI(database="alerts")
    process_request = load_entry_point(PLUGIN, "process_request")
    answer, status = process_request(engine, {}, {}, b"{}", None)

    assert status == 500
    assert "influxdb3 install package <path of the madcheck wheel>" in answer["error"]
    assert any(
        "install package <path of the madcheck wheel>" in line for line in engine.log_texts("ERROR")
    )


def test_a_bug_inside_a_sender_becomes_a_result_not_a_crash(monkeypatch):
    def broken(*_args):
        raise KeyError("boom")

    monkeypatch.setitem(channels.SENDERS, "slack", broken)
    answer, status = call(request(slack={"slack_webhook_url": "http://127.0.0.1:9/x"}), FAST)

    assert status == 502
    assert answer["results"]["slack"] == {"ok": False, "reason": "unexpected KeyError"}


# -- no input crashes the endpoint ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
sender_names = st.sampled_from(["slack", "discord", "http", "sms", "whatsapp", "other"])
sender_args = st.dictionaries(
    st.sampled_from(
        [
            "slack_webhook_url",
            "discord_webhook_url",
            "http_webhook_url",
            "slack_headers",
            "twilio_sid",
            "twilio_token",
            "twilio_from_number",
            "twilio_to_number",
        ]
    ),
    json_values | st.just("http://127.0.0.1:9/x"),
    max_size=4,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "notification_text": json_values,
        "senders_config": st.dictionaries(sender_names, sender_args | json_values, max_size=3),
        "alert": json_values,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_any_request_gets_a_json_answer_and_never_reaches_beyond_loopback(monkeypatch, body):
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")
    args = {**FAST, "retry_attempts": "1", "allowed_webhook_hosts": "127.0.0.1:9"}
    answer, status = call(body, args)

    assert status in (200, 400, 502)
    assert answer["status"] in ("ok", "partial", "failed")


def test_an_unexpected_error_answers_500_naming_only_its_kind(monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("http://127.0.0.1/secret-path")

    monkeypatch.setattr("madcheck.plugin.notifier.dispatch", explode)
    engine = EngineAPI(database="alerts")
    answer, status = call(
        request(slack={"slack_webhook_url": "http://127.0.0.1:9/x"}), FAST, engine
    )

    assert (status, answer["error"]) == (500, "internal error (RuntimeError)")
    assert engine.log_texts("ERROR") == ["notifier: internal error (RuntimeError)"]
