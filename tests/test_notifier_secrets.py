"""No webhook URL, header value, Twilio credential or phone number in any log line or answer."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from madcheck.engine.api import EngineAPI
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

HEADER_SECRET = "Bearer hdr-secret-5b1f"
TOKEN_LIKE = "xoxb-123-secret"
HEADERS = encoded_headers({"Authorization": HEADER_SECRET, "X-Api-Key": "key-secret-77aa"})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def twilio(monkeypatch):
    with standins.twilio(TWILIO_SID, TWILIO_TOKEN) as service:
        monkeypatch.setenv("TWILIO_API_BASE_URL", service.base_url)
        yield service


def _secrets(*urls: str) -> list[str]:
    paths = [url.split("/", 3)[3] for url in urls]
    return [
        *urls,
        *paths,
        HEADER_SECRET,
        TOKEN_LIKE,
        "hdr-secret-5b1f",
        "key-secret-77aa",
        TWILIO_SID,
        TWILIO_TOKEN,
        FROM_NUMBER,
        TO_NUMBER,
        FROM_NUMBER.lstrip("+"),
        TO_NUMBER.lstrip("+"),
    ]


def test_no_secret_reaches_logs_or_answers_whatever_fails(twilio):
    engine = EngineAPI(database="alerts", trigger_name="notify")
    answers: list[dict] = []
    release = threading.Event()
    refused = f"http://127.0.0.1:{_closed_port()}/hooks/refused-secret-path"
    with standins.slack() as slack, standins.discord() as discord, standins.webhook() as hook:
        urls = (slack.url, discord.url, hook.url, refused)
        secret_config = {
            "slack": {"slack_webhook_url": slack.url, "slack_headers": HEADERS},
            "discord": {"discord_webhook_url": discord.url, "discord_headers": HEADERS},
            "http": {"http_webhook_url": hook.url, "http_headers": HEADERS},
            "sms": twilio_config(),
            "whatsapp": twilio_config(),
        }

        def run(config: dict, args: dict | None = None) -> None:
            answer, _ = call(request(**config), {**FAST, **(args or {})}, engine)
            answers.append(answer)

        run(secret_config)  # everything delivered
        # services answering with errors that quote the secrets back
        slack.script(Reply.text(404, f"no_service for {slack.url}"))
        discord.script(
            Reply.json(400, {"code": 10015, "message": f"Unknown Webhook {discord.url}"})
        )
        hook.script(*[Reply.text(500, f"upstream {hook.url} {HEADER_SECRET}")] * 3)
        twilio.script(
            standins.twilio_error(400, 21211, f"The 'To' number {TO_NUMBER} is not valid."),
            standins.twilio_unauthorized(),
        )
        run(secret_config)
        # transport failures: refused connections and timeouts
        hook.script(*[Reply(200, hold=release)] * 3)
        run(
            {"http": {"http_webhook_url": hook.url}, "slack": {"slack_webhook_url": refused}},
            {"request_timeout": "30ms"},
        )
        release.set()
        # arguments refused before sending
        run(
            {
                "slack": {
                    "slack_webhook_url": slack.url,
                    "slack_headers": "not base64 " + TOKEN_LIKE,
                },
                "discord": {"discord_webhook_url": discord.url.replace("127.0.0.1", "localhost")},
                "sms": {**twilio_config(), "twilio_sid": f"{TWILIO_SID}/../x"},
            },
            {"allowed_webhook_hosts": "127.0.0.1"},
        )
        # malformed requests that carry secrets
        for body in (
            json.dumps({"notification_text": "", "senders_config": secret_config}).encode(),
            json.dumps({"notification_text": "x", "senders_config": {"slack": slack.url}}).encode(),
            (json.dumps(secret_config) + "}").encode(),
        ):
            answers.append(call(body, FAST, engine)[0])

    texts = [record.log_text for record in engine.logs] + [json.dumps(a) for a in answers]
    assert len(engine.logs) >= 15  # the scenario really logged
    leaks = [(secret, text) for secret in _secrets(*urls) for text in texts if secret in text]
    assert leaks == []
    assert sum(a.get("status") == "ok" for a in answers) == 1


def test_the_scan_would_catch_a_leak():
    """Guard against a vacuous scan: a URL in a log line is found."""
    with standins.slack() as slack:
        texts = [f"posting to {slack.url}"]
        assert any(secret in text for secret in _secrets(slack.url) for text in texts)
