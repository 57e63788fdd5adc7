"""From routed alerts to outbox messages: one by one, gathered into groups, or held by the cap.

The stages' decisions (``madcheck.route.grouping``, ``madcheck.route.cap``) become outbox
entries here. A group's notification and a cap summary are queued at once with ``not_before``
at the end of their wait; members join them through ``Outbox.amend`` while they wait, and their
final text is written once, when they fall due (``PendingAlert.complete``), so a group of
thousands costs one rendering, not one per member. The background sender sends them then, with
or without further writes. All of it runs on the
outbox's clock, so the waits and the sender agree (and tests can move that clock).

Every alert gets a new random ``event_id`` per message, as before; a group or a summary has one
``event_id`` for the whole message, kept through every amendment and retry.
"""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from madcheck.config.settings import Config
from madcheck.detect.alerts import Alert
from madcheck.notify.channels.discord import MAX_CONTENT as DISCORD_LIMIT
from madcheck.notify.channels.twilio import MAX_BODY as TWILIO_LIMIT
from madcheck.notify.outbox import Outbox, PendingAlert
from madcheck.plugin.delivery import Queued
from madcheck.route.cap import Held, StormCap
from madcheck.route.grouping import Group, Grouper, group_context, render_group

#: the longest text each channel takes (what a group's ``$series`` list is fitted to); Slack
#: truncates past 40,000 characters, and a webhook receiver gets the same bound
TEXT_LIMITS = {"discord": DISCORD_LIMIT, "sms": TWILIO_LIMIT, "whatsapp": TWILIO_LIMIT}
DEFAULT_TEXT_LIMIT = 40_000

CAPPED = "capped"


def text_limit(senders: tuple[str, ...]) -> int:
    return min((TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT) for name in senders), default=0)


@dataclass
class Notices:
    """One trigger's way from alert to message (rebuilt with the config; the outbox carries)."""

    config: Config
    outbox: Outbox
    #: renders one alert's own message: (text, summary)
    render_one: Callable[[Alert], tuple[str, str]]
    grouper: Grouper | None = field(init=False, default=None)
    cap: StormCap | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        noise = self.config.noise
        clock = self._clock
        if noise.group_by:
            self.grouper = Grouper(noise.group_by, noise.group_wait_s, clock)
        if noise.max_per_minute:
            self.cap = StormCap(noise.max_per_minute, clock)

    def _clock(self) -> float:
        return self.outbox.clock()

    def queue(self, alert: Alert, queued: Queued) -> str:
        """Send ``alert`` on its way; returns the state to record it under (``capped`` when the
        storm cap held it, otherwise the alert's own)."""
        grouper = self.grouper
        if grouper is not None and not alert.resolved:
            gathering = grouper.open_for(alert)
            if gathering is not None and self._joined(
                gathering.handle, partial(gathering.add, alert)
            ):
                return alert.state
            if not self._admitted(alert, queued):
                return CAPPED
            group = grouper.restart(alert)
            group.handle = self._add(self._group_message(group), queued)
            return alert.state
        if not self._admitted(alert, queued):
            return CAPPED
        text, summary = self.render_one(alert)
        pending = PendingAlert(
            text=text,
            context={**alert.as_dict(), "event_id": random_ids.token_hex(16)},
            senders=self.config.noise.senders_for(alert.threshold.severity),
            summary=summary,
            kind="recovery" if alert.resolved else "alert",
        )
        self._add(pending, queued)
        return alert.state

    def _joined(self, handle: object, add: Callable[[], None]) -> bool:
        """Whether the waiting message ``handle`` took one more member (``add`` ran)."""
        return isinstance(handle, PendingAlert) and self.outbox.amend(handle, add)

    def _add(self, pending: PendingAlert, queued: Queued) -> PendingAlert:
        queued.dropped += self.outbox.add(pending)
        queued.added += 1
        return pending

    def _admitted(self, alert: Alert, queued: Queued) -> bool:
        """Whether the cap lets one more message out; if not, ``alert`` joins the summary."""
        cap = self.cap
        if cap is None or cap.admit():
            return True
        current = cap.current()
        if current is not None and self._joined(current.handle, partial(current.add, alert)):
            return False
        # the minute's first held alert, or its summary went out early (a config change)
        held = cap.restart(alert)
        held.handle = self._add(self._summary_message(held), queued)
        return False

    # -- messages ------------------------------------------------------------------------------

    def _group_message(self, group: Group) -> PendingAlert:
        """The group's message, due when its wait is over and written then, once."""
        return _deferred(
            "group",
            group.opened_at + self.config.noise.group_wait_s,
            lambda item: self._fill_group(item, group),
        )

    def _fill_group(self, item: PendingAlert, group: Group) -> None:
        senders = self.config.noise.senders_for(group.severity)
        item.senders = senders
        item.text = render_group(self.config.noise.group_text, group, text_limit(senders))
        item.context = {**group_context(group), "event_id": item.context["event_id"]}
        item.summary = (
            f"group of {group.count} alert(s) on {group.table}.{group.field} "
            f"[{group.label_text}] ({group.severity})"
        )

    def _summary_message(self, held: Held) -> PendingAlert:
        """The minute's summary, due when the minute ends and written then, once."""
        return _deferred(
            "storm summary", held.window_end, lambda item: self._fill_summary(item, held)
        )

    def _fill_summary(self, item: PendingAlert, held: Held) -> None:
        limit = self.config.noise.max_per_minute
        item.senders = self.config.noise.senders_for(held.severity)
        item.text = held.text(limit)
        item.context = {**held.context(limit), "event_id": item.context["event_id"]}
        item.summary = f"{held.total} alert(s) held back by max_notifications_per_minute={limit}"


def _deferred(kind: str, not_before: float, fill: Callable[[PendingAlert], None]) -> PendingAlert:
    """A message written when it falls due (``fill``, called again then by the outbox), with its
    own event id; filled once now too, so it reads well before (logs, a config change)."""
    pending = PendingAlert(
        text="",
        context={"event_id": random_ids.token_hex(16)},
        senders=(),
        summary="",
        kind=kind,
        not_before=not_before,
        complete=fill,
    )
    fill(pending)
    return pending
