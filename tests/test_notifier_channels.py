"""Each channel over real loopback HTTP, against stand-ins that answer like the services."""

from __future__ import annotations

import json
import socket
import threading
import time
from email.utils import formatdate

import pytest

from madcheck.notify.channels.base import SendContext
from madcheck.notify.dispatch import dispatch, parse_request
from madcheck.notify.retry import RetryPolicy
from tests import standins
from tests.notifier_calls import (
    FAST,
    FROM_NUMBER,
    TO_NUMBER,
    TWILIO_SID,
    TWILIO_TOKEN,
    call,
    encoded_headers,
    request,
    twilio_config,
)
from tests.standins import Reply


@pytest.fixture
def twilio(monkeypatch):
    with standins.twilio(TWILIO_SID, TWILIO_TOKEN) as service:
        monkeypatch.setenv("TWILIO_API_BASE_URL", service.base_url)
        monkeypatch.delenv("TWILIO_SID", raising=False)
        monkeypatch.delenv("TWILIO_TOKEN", raising=False)
        yield service


# -- Slack ---------------------------------------------------------------------------------------


def test_slack_gets_the_text_as_json_with_the_extra_headers():
    with standins.slack() as slack:
        headers = encoded_headers({"X-Team": "ops", "X-Signature": "abc123"})
        config = {"slack_webhook_url": slack.url, "slack_headers": headers}
        answer, status = call(request("cpu is hot", slack=config), FAST)

    assert (status, answer) == (
        200,
        {"status": "ok", "results": {"slack": {"ok": True, "reason": "HTTP 200"}}},
    )
    [sent] = slack.requests
    assert sent.json() == {"text": "cpu is hot"}
    assert sent.headers["content-type"] == "application/json"
    assert (sent.headers["x-team"], sent.headers["x-signature"]) == ("ops", "abc123")


def test_slack_rate_limit_is_waited_out_and_retried():
    with standins.slack() as slack:
        slack.script(standins.slack_rate_limited("1"))
        answer, status = call(request(slack={"slack_webhook_url": slack.url}), FAST)

    assert status == 200
    assert answer["results"]["slack"] == {"ok": True, "reason": "HTTP 200 after 2 attempts"}
    assert len(slack.requests) == 2


def test_slack_invalid_payload_is_permanent_and_not_retried():
    with standins.slack() as slack:
        slack.script(standins.slack_invalid_payload())
        answer, status = call(request(slack={"slack_webhook_url": slack.url}), FAST)

    assert status == 502
    assert answer == {
        "status": "failed",
        "results": {"slack": {"ok": False, "reason": "HTTP 400 (Slack invalid_payload)"}},
    }
    assert len(slack.requests) == 1


def test_server_errors_are_retried_three_times_then_reported():
    with standins.slack() as slack:
        slack.script(*[standins.server_error(503)] * 3)
        answer, _ = call(request(slack={"slack_webhook_url": slack.url}), FAST)

    assert answer["results"]["slack"] == {"ok": False, "reason": "HTTP 503 after 3 attempts"}
    assert len(slack.requests) == 3


def test_retry_attempts_argument_changes_the_number_of_tries():
    with standins.slack() as slack:
        slack.script(*[standins.server_error()] * 5)
        answer, _ = call(
            request(slack={"slack_webhook_url": slack.url}), {**FAST, "retry_attempts": "5"}
        )

    assert answer["results"]["slack"]["reason"] == "HTTP 500 after 5 attempts"
    assert len(slack.requests) == 5


# -- Discord -------------------------------------------------------------------------------------


def test_discord_gets_content_and_its_204_counts_as_delivered():
    with standins.discord() as discord:
        answer, status = call(
            request("disk full", discord={"discord_webhook_url": discord.url}), FAST
        )

    assert status == 200
    assert answer["results"]["discord"] == {"ok": True, "reason": "HTTP 204"}
    assert discord.requests[0].json() == {"content": "disk full"}


def test_discord_text_over_2000_characters_is_truncated_not_refused():
    text = "alert " + "\N{FIRE}x" * 3000  # astral characters count twice in UTF-16
    with standins.discord() as discord:
        answer, _ = call(request(text, discord={"discord_webhook_url": discord.url}), FAST)

    assert answer["results"]["discord"]["ok"] is True
    content = discord.requests[0].json()["content"]
    assert len(content.encode("utf-16-le")) // 2 <= 2000
    assert content.endswith("\N{HORIZONTAL ELLIPSIS}")
    assert text.startswith(content[:-1])


def test_discord_error_code_is_reported_and_not_retried():
    with standins.discord() as discord:
        discord.script(Reply.json(400, {"code": 50035, "message": "Invalid Form Body"}))
        answer, _ = call(request(discord={"discord_webhook_url": discord.url}), FAST)

    assert answer["results"]["discord"] == {"ok": False, "reason": "HTTP 400 (Discord error 50035)"}
    assert len(discord.requests) == 1


def _dispatch_recording_pauses(body: dict, policy: RetryPolicy) -> tuple[dict, list[float]]:
    pauses: list[float] = []
    context = SendContext(policy=policy, sleep=pauses.append)
    outcome = dispatch(parse_request(json.dumps(body)), context)
    return outcome.answer().body, pauses


def test_discord_waits_for_the_json_retry_after_rather_than_the_header():
    with standins.discord() as discord:
        discord.script(standins.discord_rate_limited(0.75))  # its Retry-After header says 1
        answer, pauses = _dispatch_recording_pauses(
            request(discord={"discord_webhook_url": discord.url}), RetryPolicy(backoff=(3.0, 4.0))
        )

    assert answer["status"] == "ok"
    assert pauses == [0.75]
    assert len(discord.requests) == 2


def test_retry_after_header_seconds_are_honoured_and_capped():
    with standins.slack() as slack:
        slack.script(standins.slack_rate_limited("7"), standins.slack_rate_limited("120"))
        answer, pauses = _dispatch_recording_pauses(
            request(slack={"slack_webhook_url": slack.url}),
            RetryPolicy(backoff=(3.0, 4.0), retry_after_cap=30.0),
        )

    assert answer["results"]["slack"]["ok"] is True
    assert pauses == [7.0, 30.0]


def test_retry_after_as_an_http_date_is_honoured_capped():
    far = formatdate(time.time() + 3600, usegmt=True)
    with standins.slack() as slack:
        slack.script(Reply.text(429, "rate_limited", {"Retry-After": far}))
        _, pauses = _dispatch_recording_pauses(
            request(slack={"slack_webhook_url": slack.url}), RetryPolicy(retry_after_cap=12.0)
        )

    assert pauses == [12.0]


def test_without_retry_after_the_pause_is_drawn_from_the_backoff_range():
    with standins.webhook() as hook:
        hook.script(standins.server_error(), standins.server_error())
        _, pauses = _dispatch_recording_pauses(
            request(http={"http_webhook_url": hook.url}), RetryPolicy(backoff=(2.0, 2.5))
        )

    assert len(pauses) == 2
    assert all(2.0 <= pause <= 2.5 for pause in pauses)


# -- generic HTTP webhook ------------------------------------------------------------------------


def test_http_webhook_gets_the_text_and_the_alert_fields():
    alert = {
        "alert_id": "a1",
        "table": "cpu",
        "field": "temp",
        "tags": {"host": "a"},
        "value": 93.0,
    }
    with standins.webhook() as hook:
        body = {**request("temp outlier", http={"http_webhook_url": hook.url}), "alert": alert}
        _, status = call(body, FAST)

    assert status == 200
    assert hook.requests[0].json() == {"notification_text": "temp outlier", "alert": alert}


def test_http_webhook_without_alert_gets_only_the_text():
    with standins.webhook() as hook:
        call(request("plain", http={"http_webhook_url": hook.url}), FAST)

    assert hook.requests[0].json() == {"notification_text": "plain"}


def test_a_slow_webhook_times_out_and_is_retried():
    release = threading.Event()
    with standins.webhook() as hook:
        hook.script(*[Reply(200, hold=release)] * 3)
        answer, status = call(
            request(http={"http_webhook_url": hook.url}), {**FAST, "request_timeout": "50ms"}
        )
        release.set()

    assert status == 502
    assert answer["results"]["http"] == {"ok": False, "reason": "timed out after 3 attempts"}
    assert len(hook.requests) == 3


def test_a_refused_connection_is_reported_after_retries():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer, _ = call(request(http={"http_webhook_url": f"http://127.0.0.1:{port}/x"}), FAST)

    assert answer["results"]["http"] == {
        "ok": False,
        "reason": "connection failed after 3 attempts",
    }


def test_redirects_are_not_followed():
    with standins.webhook() as target, standins.webhook() as hook:
        hook.script(Reply(307, headers={"Location": target.url}))
        answer, _ = call(request(http={"http_webhook_url": hook.url}), FAST)

    assert answer["results"]["http"] == {"ok": False, "reason": "HTTP 307"}
    assert target.requests == []


# -- Twilio SMS and WhatsApp ---------------------------------------------------------------------


def test_sms_posts_the_form_to_the_account_with_basic_auth(twilio):
    answer, status = call(request("temp high", sms=twilio_config()), FAST)

    assert (status, answer["results"]["sms"]) == (200, {"ok": True, "reason": "HTTP 201"})
    [sent] = twilio.requests
    assert sent.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert sent.basic_auth() == (TWILIO_SID, TWILIO_TOKEN)
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.form() == {"To": TO_NUMBER, "From": FROM_NUMBER, "Body": "temp high"}


def test_whatsapp_numbers_get_the_whatsapp_prefix_once(twilio):
    config = twilio_config(twilio_from_number=f"whatsapp:{FROM_NUMBER}")
    answer, _ = call(request(whatsapp=config), FAST)

    assert answer["results"]["whatsapp"]["ok"] is True
    form = twilio.requests[0].form()
    assert (form["To"], form["From"]) == (f"whatsapp:{TO_NUMBER}", f"whatsapp:{FROM_NUMBER}")


def test_twilio_credentials_come_from_the_environment_when_absent(twilio, monkeypatch):
    monkeypatch.setenv("TWILIO_SID", TWILIO_SID)
    monkeypatch.setenv("TWILIO_TOKEN", TWILIO_TOKEN)
    config = {"twilio_sid": "", "twilio_from_number": FROM_NUMBER, "twilio_to_number": TO_NUMBER}
    answer, _ = call(request(sms=config), FAST)

    assert answer["results"]["sms"]["ok"] is True
    assert twilio.requests[0].basic_auth() == (TWILIO_SID, TWILIO_TOKEN)


def test_sms_body_is_kept_within_1600_characters(twilio):
    answer, _ = call(request("x" * 5000, sms=twilio_config()), FAST)

    assert answer["results"]["sms"]["ok"] is True
    body = twilio.requests[0].form()["Body"]
    assert len(body) == 1600
    assert body.endswith("\N{HORIZONTAL ELLIPSIS}")


def test_wrong_twilio_token_is_a_permanent_failure_with_the_error_code(twilio):
    answer, status = call(request(sms=twilio_config(twilio_token="wrong-token")), FAST)

    assert status == 502
    assert answer["results"]["sms"] == {"ok": False, "reason": "HTTP 401 (Twilio error 20003)"}
    assert len(twilio.requests) == 1


def test_twilio_rate_limit_is_retried(twilio):
    twilio.script(standins.twilio_rate_limited("1"))
    answer, _ = call(request(sms=twilio_config()), FAST)

    assert answer["results"]["sms"] == {"ok": True, "reason": "HTTP 201 after 2 attempts"}


@pytest.mark.parametrize(
    "missing", ["twilio_sid", "twilio_token", "twilio_from_number", "twilio_to_number"]
)
def test_missing_twilio_arguments_fail_that_sender_before_sending(twilio, missing):
    config = twilio_config()
    del config[missing]
    answer, _ = call(request(sms=config), FAST)

    assert answer["results"]["sms"] == {"ok": False, "reason": f"missing {missing}"}
    assert twilio.requests == []


# -- all channels together -----------------------------------------------------------------------


def test_one_slow_channel_holds_no_other():
    """Each stand-in answers only once the other has its request: only concurrency succeeds."""
    with standins.slack() as slack, standins.discord() as discord:
        slack.script(lambda _: Reply.text(200 if discord.received.wait(5) else 500, "ok"))
        discord.script(lambda _: Reply(204 if slack.received.wait(5) else 500))
        config = {
            "slack": {"slack_webhook_url": slack.url},
            "discord": {"discord_webhook_url": discord.url},
        }
        answer, status = call(request(**config), {**FAST, "retry_attempts": "1"})

    assert (status, answer["status"]) == (200, "ok")


def test_all_five_senders_in_one_request(twilio):
    with standins.slack() as slack, standins.discord() as discord, standins.webhook() as hook:
        body = request(
            "every channel",
            slack={"slack_webhook_url": slack.url},
            discord={"discord_webhook_url": discord.url},
            http={"http_webhook_url": hook.url},
            sms=twilio_config(),
            whatsapp=twilio_config(),
        )
        answer, status = call(body, FAST)

    assert status == 200
    assert {name: result["ok"] for name, result in answer["results"].items()} == {
        "slack": True,
        "discord": True,
        "http": True,
        "sms": True,
        "whatsapp": True,
    }
    bodies = sorted(sent.form()["To"] for sent in twilio.requests)
    assert bodies == [TO_NUMBER, f"whatsapp:{TO_NUMBER}"]
    assert slack.requests[0].json() == {"text": "every channel"}
    assert discord.requests[0].json() == {"content": "every channel"}
