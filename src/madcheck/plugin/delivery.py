"""Delivery glue of the MAD trigger: its outbox, the notifier client and the call's log lines.

``process_writes`` puts every fired alert in the trigger's outbox (``madcheck.notify.outbox``);
at the end of the call ``deliver`` sends what fits in the delivery budget and reports the pass in
a few lines, never one per waiting alert. The payload is built from the current config at each
try, so a corrected webhook URL or token also reaches the alerts already waiting.
"""

from __future__ import annotations

from madcheck.config.settings import Config
from madcheck.notify.client import NotifierClient
from madcheck.notify.outbox import Outbox, PassReport, PendingAlert
from madcheck.notify.retry import Delivery
from madcheck.plugin.calllog import CallLog


def carried_outbox(previous: Outbox | None, config: Config, log: CallLog) -> Outbox:
    """The previous config's outbox, resized, so a config change loses no pending alert."""
    delivery = config.delivery
    if previous is None:
        return Outbox(
            delivery.outbox_size, delivery.outbox_backoff_s, delivery.outbox_backoff_max_s
        )
    dropped = previous.configure(
        delivery.outbox_size, delivery.outbox_backoff_s, delivery.outbox_backoff_max_s
    )
    orphans = previous.keep_senders(config.sender_names)
    if dropped:
        log.error(f"outbox_size is now {delivery.outbox_size}: dropped {dropped} oldest alert(s)")
    if orphans:
        log.error(f"dropped {len(orphans)} waiting alert(s) whose senders are no longer configured")
    return previous


def log_dropped(outbox: Outbox, dropped: int, log: CallLog) -> None:
    """One ERROR for the alerts a full outbox dropped during this call, if any."""
    if dropped:
        log.error(
            f"outbox full ({outbox.capacity} alerts): dropped the {dropped} oldest undelivered "
            f"alert(s) this call, {outbox.dropped_total} since the trigger started"
        )


def deliver(
    outbox: Outbox, client: NotifierClient, config: Config, new_alerts: int, log: CallLog
) -> None:
    """Send what the outbox holds, within the delivery budget, and log the pass in few lines.

    ``new_alerts`` is how many alerts this call added: a call that finds the outbox backing off
    says so only when it brought some.
    """
    if not len(outbox):
        return

    def send(pending: PendingAlert, seconds_left: float) -> Delivery:
        payload = {
            "notification_text": pending.text,
            "senders_config": {
                name: dict(config.senders_config[name])
                for name in pending.senders
                if name in config.senders_config
            },
            "alert": dict(pending.context),
        }
        return client.send(payload, deadline=seconds_left)

    _log_pass(outbox.deliver(send, config.delivery.budget_s), new_alerts, log)


def _log_pass(report: PassReport, new_alerts: int, log: CallLog) -> None:
    """One line per outcome of the pass; an outage must not write a line per flush."""
    for pending in report.delivered:
        retried = f" (after {pending.tries} failed tries)" if pending.tries else ""
        log.info(f"{pending.kind} sent to {'.'.join(pending.senders)}{retried}: {pending.summary}")
    if report.partial:
        failed = ", ".join(
            sorted(
                {
                    f"{name} ({reason})"
                    for _, reasons in report.partial
                    for name, reason in reasons.items()
                }
            )
        )
        log.error(
            f"alert delivery failed for {len(report.partial)} alert(s); failed senders: "
            f"{failed}; only those will be retried. First: {report.partial[0][0].summary}"
        )
    if report.rejected:
        pending, reason = report.rejected[0]
        log.error(
            f"the notifier rejected {len(report.rejected)} alert(s) as malformed ({reason}); "
            f"they are dropped. First: {pending.summary}"
        )
    waiting = f"{report.waiting} alert(s) waiting in the outbox"
    if report.retry_in is not None:
        waiting += f", next try in {report.retry_in:.1f}s"
    if report.oldest is not None:
        waiting += f"; oldest: {report.oldest.kind} {report.oldest.summary}"
    if report.unavailable is not None:
        log.error(f"alert delivery failed ({report.unavailable}): {waiting}")
    elif report.deferred and new_alerts:
        log.warn(f"notifier unavailable at the last try, {new_alerts} new alert(s) wait: {waiting}")
    elif report.out_of_time:
        log.warn(f"delivery budget used up: {waiting}")
