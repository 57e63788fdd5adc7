"""Delivery glue of the MAD trigger: its outbox, its background sender and the calls' log lines.

A call (``process_writes``, ``process_scheduled_call``) only puts fired alerts in the trigger's
outbox (``madcheck.notify.outbox``) with ``queue_alert`` and ends with ``end_call``, which logs
what the sender did meanwhile and makes sure the trigger's sender thread
(``madcheck.notify.sender``) runs; the sender posts
them and records what happened in ``Outcomes``; the next call logs that in a few lines, one per
kind of outcome, never one per waiting alert. The payload is built from the current config at
each try, so a corrected webhook URL or token also reaches the alerts already waiting, and it
carries the alert's ``event_id``, by which the notifier sends each event to each channel once.

Callers that need delivery to have happened (tests, ``madcheck test wal_plugin``, the demo) wait
for it with ``wait_for_delivery``, ``wait_for_sender`` or ``wait_for_all_deliveries`` rather than
sleeping.
"""

from __future__ import annotations

import secrets as random_ids
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from madcheck.config.settings import Config, DeliverySettings
from madcheck.config.thresholds import DEFAULT_LEVEL
from madcheck.notify.client import NotifierClient
from madcheck.notify.outbox import Outbox, PassReport, PendingAlert, Send
from madcheck.notify.retry import Delivery
from madcheck.notify.sender import OutboxSender, live_senders
from madcheck.plugin.calllog import CallLog

#: where a data-writes trigger's state (``madcheck.plugin.writes.TriggerState``) lives in its cache
STATE_KEY = "madcheck.mad_check.state"
#: where a scheduled trigger's state (``madcheck.plugin.missing.ScheduledState``) lives
SCHEDULED_STATE_KEY = "madcheck.missing.state"
LOG_LABEL = "mad_check"
#: delivered alerts listed one per line in a call's log; more are counted in one line
MAX_LISTED = 50


@dataclass
class Outcomes:
    """What the sender did since a call last logged it. Filled by the sender's thread, taken by
    calls; bounded, whatever the number of alerts between two calls."""

    delivered: list[PendingAlert] = field(default_factory=list)
    delivered_count: int = 0
    partial: list[tuple[PendingAlert, dict[str, str]]] = field(default_factory=list)
    partial_count: int = 0
    rejected: list[tuple[PendingAlert, str]] = field(default_factory=list)
    rejected_count: int = 0
    #: the latest reason the notifier was unavailable, and how many passes failed so
    unavailable: str | None = None
    failed_passes: int = 0
    crash: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, report: PassReport) -> None:
        with self._lock:
            self.delivered_count += len(report.delivered)
            self.delivered.extend(report.delivered[: MAX_LISTED - len(self.delivered)])
            self.partial_count += len(report.partial)
            self.partial.extend(report.partial[: MAX_LISTED - len(self.partial)])
            self.rejected_count += len(report.rejected)
            self.rejected.extend(report.rejected[: 1 - len(self.rejected)])
            if report.unavailable is not None:
                self.unavailable = report.unavailable
                self.failed_passes += 1

    def crashed(self, text: str) -> None:
        with self._lock:
            self.crash = text

    def take(self) -> Outcomes | None:
        """The outcomes so far, leaving this one empty: each is logged by exactly one call.
        None when there is nothing to log (no pass ended since: most calls)."""
        with self._lock:
            if not (
                self.delivered_count
                or self.partial_count
                or self.rejected_count
                or self.unavailable is not None
                or self.crash is not None
            ):
                return None
            taken = Outcomes(
                self.delivered,
                self.delivered_count,
                self.partial,
                self.partial_count,
                self.rejected,
                self.rejected_count,
                self.unavailable,
                self.failed_passes,
                self.crash,
            )
            self.delivered, self.partial, self.rejected = [], [], []
            self.delivered_count = self.partial_count = self.rejected_count = 0
            self.unavailable, self.failed_passes, self.crash = None, 0, None
        return taken


def new_sender(owner: Any, outbox: Outbox, outcomes: Outcomes) -> OutboxSender:
    """The sender of ``owner`` (a ``TriggerState``): started by the first call that needs it."""
    return OutboxSender(owner, outbox, _send_for, outcomes.record, outcomes.crashed)


def _send_for(owner: Any) -> Send:
    return sender_function(owner.client, owner.config)


def exchange_deadline(delivery: DeliverySettings) -> float:
    """Wall-clock bound of one alert's exchange with the notifier: every attempt's timeout and
    every pause. requests' timeout only bounds each socket operation, so without it a notifier
    trickling its answer could hold the sender for hours."""
    return delivery.attempts * delivery.timeout_s + (delivery.attempts - 1) * delivery.backoff_s[1]


def sender_function(client: NotifierClient, config: Config) -> Send:
    """Post one pending alert with ``config``'s current sender settings."""
    deadline = exchange_deadline(config.delivery)

    def send(pending: PendingAlert) -> Delivery:
        payload = {
            "notification_text": pending.text,
            "senders_config": {
                name: dict(config.senders_config[name])
                for name in pending.senders
                if name in config.senders_config
            },
            "alert": dict(pending.context),
        }
        return client.send(payload, deadline=deadline)

    return send


def carried_outbox(previous: Outbox | None, config: Config, log: CallLog) -> Outbox:
    """The previous config's outbox, resized, so a config change loses no pending alert; its
    backoff is forgotten, so the waiting alerts are tried at once with the new settings."""
    delivery = config.delivery
    if previous is None:
        return Outbox(
            delivery.outbox_size, delivery.outbox_backoff_s, delivery.outbox_backoff_max_s
        )
    dropped = previous.configure(
        delivery.outbox_size, delivery.outbox_backoff_s, delivery.outbox_backoff_max_s
    )
    orphans = previous.keep_senders(config.sender_names)
    previous.retry_now()
    if dropped:
        log.error(f"outbox_size is now {delivery.outbox_size}: dropped {dropped} oldest alert(s)")
    if orphans:
        log.error(f"dropped {len(orphans)} waiting alert(s) whose senders are no longer configured")
    return previous


@dataclass
class Queued:
    """Alerts one call put in the outbox, and old ones the full outbox dropped for them."""

    added: int = 0
    dropped: int = 0


def queue_alert(
    state: Any, queued: Queued, *, text: str, context: dict[str, object], summary: str, kind: str
) -> None:
    """Put one alert (``kind`` "alert" or "recovery") of ``state``'s trigger in its outbox,
    with a new ``event_id``, for the senders of the default level (``senders``; channels named
    only by ``senders_critical`` and the like do not get it).

    The id is random rather than derived from the alert: two triggers watching the same series
    with the same rule but different channels must not look like retries of one event to a
    shared notifier. It is drawn once, so every retry of this event carries the same id.
    """
    pending = PendingAlert(
        text=text,
        context={**context, "event_id": random_ids.token_hex(16)},
        senders=state.config.noise.senders_for(DEFAULT_LEVEL),
        summary=summary,
        kind=kind,
    )
    queued.dropped += state.outbox.add(pending)
    queued.added += 1


def end_call(state: Any, queued: Queued, log: CallLog) -> None:
    """The end of every call: log what the full outbox dropped and what the sender did since
    the last call, and make sure the sender runs while alerts wait (woken if this call added
    some). ``state`` is the trigger's ``AlertingState``."""
    outbox = state.outbox
    log_dropped(outbox, queued.dropped, log)
    log_outcomes(state.outcomes.take(), outbox, queued.added, log)
    if len(outbox):
        state.sender.ensure_running(wake=queued.added > 0)


def log_dropped(outbox: Outbox, dropped: int, log: CallLog) -> None:
    """One ERROR for the alerts a full outbox dropped during this call, if any."""
    if dropped:
        log.error(
            f"outbox full ({outbox.capacity} alerts): dropped the {dropped} oldest undelivered "
            f"alert(s) this call, {outbox.dropped_total} since the trigger started"
        )


def log_outcomes(outcomes: Outcomes | None, outbox: Outbox, new_alerts: int, log: CallLog) -> None:
    """Log what the sender did since the last call (``Outcomes.take``; None: nothing): one line
    per outcome kind (and one per delivered alert, up to ``MAX_LISTED``); an outage must not
    write a line per flush.

    ``new_alerts`` is how many alerts this call added: a call that finds the outbox backing off
    says so only when it brought some.
    """
    if outcomes is None:
        if outbox.backing_off and new_alerts:
            _log_backing_off(outbox, new_alerts, log)
        return
    for pending in outcomes.delivered:
        retried = f" (after {pending.tries} failed tries)" if pending.tries else ""
        log.info(f"{pending.kind} sent to {'.'.join(pending.senders)}{retried}: {pending.summary}")
    unlisted = outcomes.delivered_count - len(outcomes.delivered)
    if unlisted:
        log.info(f"and {unlisted} more alert(s) sent")
    if outcomes.partial:
        failed = ", ".join(
            sorted(
                {
                    f"{name} ({reason})"
                    for _, reasons in outcomes.partial
                    for name, reason in reasons.items()
                }
            )
        )
        log.error(
            f"alert delivery failed for {outcomes.partial_count} alert(s); failed senders: "
            f"{failed}; only those will be retried. First: {outcomes.partial[0][0].summary}"
        )
    if outcomes.rejected:
        pending, reason = outcomes.rejected[0]
        log.error(
            f"the notifier rejected {outcomes.rejected_count} alert(s) as malformed ({reason}); "
            f"they are dropped. First: {pending.summary}"
        )
    if outcomes.crash is not None:
        log.error(f"the alert sender failed ({outcomes.crash}); it is started again")
    if outcomes.unavailable is not None:
        tries = f", {outcomes.failed_passes} failed tries" if outcomes.failed_passes > 1 else ""
        log.error(f"alert delivery failed ({outcomes.unavailable}{tries}): {_waiting(outbox)}")
    elif outbox.backing_off and new_alerts:
        _log_backing_off(outbox, new_alerts, log)


def _log_backing_off(outbox: Outbox, new_alerts: int, log: CallLog) -> None:
    log.warn(
        f"notifier unavailable at the last try, {new_alerts} new alert(s) wait: {_waiting(outbox)}"
    )


def _waiting(outbox: Outbox) -> str:
    """What waits in the outbox, for a line about delivery failing."""
    waiting = f"{len(outbox)} alert(s) waiting in the outbox"
    retry_in = outbox.retry_in()
    if retry_in is not None:
        waiting += f", next try in {retry_in:.1f}s"
    oldest = outbox.oldest
    if oldest is not None:
        waiting += f"; oldest: {oldest.kind} {oldest.summary}"
    return waiting


# -- waiting for delivery (tests, test wal_plugin, the demo) ----------------------------------


def _states_of(target: Any) -> list[Any]:
    """The trigger states (data-writes, scheduled) of an ``influxdb3_local``, a trigger cache,
    or a state itself."""
    if hasattr(target, "sender"):
        return [target]
    cache = getattr(target, "cache", target)
    found = (cache.get(key) for key in (STATE_KEY, SCHEDULED_STATE_KEY))
    return [state for state in found if state is not None]


def _wait(target: Any, done: Callable[[Outbox], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    settled = True  # no state: nothing was ever queued
    for state in _states_of(target):
        if len(state.outbox):
            state.sender.ensure_running(wake=False)
        remaining = max(0.0, deadline - time.monotonic())
        settled = bool(state.sender.wait_until(done, remaining)) and settled
    return settled


def wait_for_delivery(target: Any, timeout: float) -> bool:
    """Wait until the trigger's outbox is empty (every alert delivered or dropped) and no request
    is on its way; at most ``timeout`` seconds. ``target`` is the trigger's ``influxdb3_local``,
    its cache, or its state. Returns False if alerts are still waiting then (notifier down)."""
    return _wait(target, lambda outbox: not len(outbox), timeout)


def wait_for_sender(target: Any, timeout: float) -> bool:
    """Wait until the sender has tried every alert that is due, whatever the outcome: the outbox
    is empty or what it holds waits for a backoff. For callers that expect a failure."""
    return _wait(target, lambda outbox: outbox.seconds_until_due() != 0, timeout)


def wait_for_all_deliveries(timeout: float) -> bool:
    """``wait_for_delivery`` for every MAD trigger of this process (the demo's local engine)."""
    deadline = time.monotonic() + timeout
    return all(
        sender.wait_until(lambda outbox: not len(outbox), max(0.0, deadline - time.monotonic()))
        for sender in live_senders()
    )


def finish_delivery(influxdb3_local: Any, timeout: float) -> bool:
    """Wait for the sender's first try of every due alert, then log its outcomes through
    ``influxdb3_local`` as the next call would: for a one-shot run (``madcheck test wal_plugin``)
    that has no next call (``test wal_plugin``, ``test schedule_plugin``). Call it from the
    thread that owns ``influxdb3_local``."""
    settled = wait_for_sender(influxdb3_local, timeout)
    for state in _states_of(influxdb3_local):
        log = CallLog(influxdb3_local, LOG_LABEL)
        log.hide(state.secrets)
        log_outcomes(state.outcomes.take(), state.outbox, 0, log)
    return settled
