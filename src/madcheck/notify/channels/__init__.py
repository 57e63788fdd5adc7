"""The channel senders, by the names callers use in ``senders_config``."""

from __future__ import annotations

from madcheck.notify.channels.base import Sender
from madcheck.notify.channels.discord import send_discord
from madcheck.notify.channels.slack import send_slack
from madcheck.notify.channels.twilio import send_sms, send_whatsapp
from madcheck.notify.channels.webhook import send_http

SENDERS: dict[str, Sender] = {
    "slack": send_slack,
    "discord": send_discord,
    "http": send_http,
    "sms": send_sms,
    "whatsapp": send_whatsapp,
}
