"""Calling the notifier the way the engine does: the plugin file, loaded afresh, per request."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "notifier_plugin.py"

# Every wait made tiny, so retries cost milliseconds.
FAST = {"retry_backoff": "1ms..2ms", "retry_after_cap": "20ms", "request_timeout": "5s"}

TWILIO_SID = "AC" + "5e" * 16
TWILIO_TOKEN = "twilio-token-0f9e8d7c"
FROM_NUMBER = "+15550001111"
TO_NUMBER = "+15559998888"


def call(
    body: Any,
    args: dict[str, str] | None = None,
    engine: EngineAPI | None = None,
) -> tuple[dict[str, Any], int]:
    """POST ``body`` (a dict is sent as JSON) to the notifier; return its answer and status."""
    engine = engine or EngineAPI(database="alerts", trigger_name="notify")
    raw = json.dumps(body).encode() if isinstance(body, dict | list) else body
    process_request = load_entry_point(PLUGIN, "process_request")
    answer, status = process_request(engine, {}, {"content-type": "application/json"}, raw, args)
    json.dumps(answer)  # the engine must be able to serialize every answer
    return answer, status


def request(
    text: str = "MAD count alert: temp in cpu", **senders: dict[str, Any]
) -> dict[str, Any]:
    return {"notification_text": text, "senders_config": senders}


def encoded_headers(headers: object) -> str:
    return base64.b64encode(json.dumps(headers).encode()).decode()


def twilio_config(**extra: str) -> dict[str, str]:
    return {
        "twilio_sid": TWILIO_SID,
        "twilio_token": TWILIO_TOKEN,
        "twilio_from_number": FROM_NUMBER,
        "twilio_to_number": TO_NUMBER,
        **extra,
    }
