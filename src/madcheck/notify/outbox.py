"""Alerts the notifier has not confirmed yet, kept until it does.

A dead or slow notifier must neither lose alerts nor stall the database's write path. So every
alert joins a bounded FIFO; each ``process_writes`` call then spends at most a time budget
delivering from its head, oldest first, and whatever does not fit or fails waits for a later call.

Three kinds of failure are told apart, because they call for different patience:

- the notifier is unavailable (no connection, timeout, 5xx without per-sender results, 401, 404,
  429 ...): the pass stops, and the whole outbox waits a backoff that doubles per failed pass up
  to a cap, so a hanging notifier costs one budget per backoff period, not one per call;
- the notifier answered but some channels failed (502 with per-sender results): the alert is
  narrowed to the failed senders, so a delivered message is never sent twice, and only that alert
  waits its own backoff; the pass goes on with the next one;
- the notifier rejected the request as malformed (400): sending the same bytes again cannot work,
  so the alert is dropped and reported.

The queue knows nothing of MAD or HTTP: the caller supplies a ``send`` function returning a
``Delivery`` (see ``madcheck.notify.retry``) and reads the ``PassReport`` to log what happened.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from madcheck.notify.retry import Delivery

Clock = Callable[[], float]
BAD_REQUEST = 400
_MAX_DOUBLINGS = 32  # 2**32 times any base is far past every sensible cap


@dataclass(eq=False)  # two alike alerts are still two alerts
class PendingAlert:
    """One alert on its way to the notifier.

    It names its senders rather than carrying their settings (webhook URLs, credentials): the
    payload is built from the trigger's current config at each try, so a corrected webhook URL
    also reaches the alerts already waiting, and no secret sits in the queue.
    """

    text: str
    context: Mapping[str, Any]
    senders: tuple[str, ...]
    summary: str
    #: what the message is, for log lines: ``alert``, ``recovery``
    kind: str = "alert"
    tries: int = 0
    not_before: float = 0.0


@dataclass
class PassReport:
    """What one delivery pass did, for the caller's log lines."""

    delivered: list[PendingAlert] = field(default_factory=list)
    #: alerts some of whose senders failed, with those senders' reasons
    partial: list[tuple[PendingAlert, dict[str, str]]] = field(default_factory=list)
    #: alerts the notifier refused as malformed, dropped
    rejected: list[tuple[PendingAlert, str]] = field(default_factory=list)
    #: why the pass stopped early because the notifier is unavailable, if it did
    unavailable: str | None = None
    #: the pass was skipped: the outbox is backing off after a failed pass
    deferred: bool = False
    #: the time budget ran out before every due alert was tried
    out_of_time: bool = False
    waiting: int = 0
    #: the alert at the head of the outbox after the pass, the next to be tried
    oldest: PendingAlert | None = None
    #: seconds until the outbox will try again, when it is backing off
    retry_in: float | None = None


Send = Callable[[PendingAlert, float], Delivery]


class Outbox:
    """A bounded FIFO of ``PendingAlert`` with backoff; one per trigger, kept in its cache."""

    def __init__(
        self,
        capacity: int = 10_000,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.backoff = backoff
        self.backoff_max = backoff_max
        #: the time source for backoff and budget; tests replace it to avoid sleeping
        self.clock = clock
        self._items: deque[PendingAlert] = deque()
        self._failed_passes = 0
        self._next_pass_at = 0.0
        #: alerts added, and dropped because the outbox was full, since it was created
        self.added_total = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    def configure(self, capacity: int, backoff: float, backoff_max: float) -> int:
        """Apply new settings (the trigger's arguments changed); returns how many were dropped."""
        self.capacity, self.backoff, self.backoff_max = capacity, backoff, backoff_max
        return self._trim()

    def keep_senders(self, configured: Iterable[str]) -> list[PendingAlert]:
        """Forget senders no longer configured; returns the alerts left with none (removed)."""
        known = set(configured)
        orphans: list[PendingAlert] = []
        kept: deque[PendingAlert] = deque()
        for item in self._items:
            item.senders = tuple(name for name in item.senders if name in known)
            (kept if item.senders else orphans).append(item)
        self._items = kept
        return orphans

    def add(self, item: PendingAlert) -> int:
        """Queue ``item`` behind the others; returns how many old alerts were dropped for it."""
        self._items.append(item)
        self.added_total += 1
        return self._trim()

    def _trim(self) -> int:
        dropped = 0
        while len(self._items) > self.capacity:
            self._items.popleft()  # the oldest goes: the latest alerts describe the present
            dropped += 1
        self.dropped_total += dropped
        return dropped

    def delay(self, failures: int) -> float:
        """Pause after ``failures`` consecutive failures: backoff, doubled each time, capped."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return float(min(self.backoff_max, self.backoff * 2**doublings))

    def deliver(self, send: Send, budget: float) -> PassReport:
        """Try the due alerts, oldest first, within ``budget`` seconds.

        ``send(item, seconds_left)`` must not take longer than ``seconds_left``.
        """
        report = PassReport()
        started = self.clock()
        if started < self._next_pass_at:
            report.deferred = bool(self._items)
        else:
            self._pass(send, budget, started, report)
        report.waiting = len(self._items)
        report.oldest = self._items[0] if self._items else None
        if self._items and self._failed_passes:
            report.retry_in = max(0.0, self._next_pass_at - self.clock())
        return report

    def _pass(self, send: Send, budget: float, started: float, report: PassReport) -> None:
        pending = list(self._items)
        for item in pending:
            now = self.clock()
            if item.not_before > now:
                continue
            left = budget - (now - started)
            if left <= 0:
                report.out_of_time = True
                return
            delivery = send(item, left)
            if delivery.attempts == 0:  # the budget ran out before a request could start
                report.out_of_time = True
                return
            failed = failed_senders(delivery.answer, item.senders)
            if delivery.ok and failed:
                # A 2xx settles every sender except those its results say failed outright.
                failed = {n: r for n, r in failed.items() if r != NO_RESULT} or None
            if (delivery.ok and not failed) or failed == {}:
                self._items.remove(item)
                report.delivered.append(item)
            elif failed is not None:
                item.senders = tuple(name for name in item.senders if name in failed)
                item.tries += 1
                item.not_before = self.clock() + self.delay(item.tries)
                report.partial.append((item, failed))
            elif delivery.status == BAD_REQUEST or (
                delivery.status is None and not delivery.retryable
            ):  # the notifier refused it, or it could not even be sent: it never will be
                self._items.remove(item)
                report.rejected.append((item, delivery.reason))
            else:
                item.tries += 1
                self._failed_passes += 1
                self._next_pass_at = self.clock() + self.delay(self._failed_passes)
                report.unavailable = delivery.reason
                return
            self._failed_passes = 0  # the notifier answered
            self._next_pass_at = 0.0


NO_RESULT = "no result"


def failed_senders(answer: Any, senders: Iterable[str]) -> dict[str, str] | None:
    """The senders the notifier did not confirm, with reasons; ``None`` without per-sender results.

    A sender missing from results that name others counts as failed: sending it again risks a
    duplicate, leaving it out risks a lost alert, and a lost alert is worse.
    """
    results = answer.get("results") if isinstance(answer, Mapping) else None
    if not isinstance(results, Mapping) or not results:
        return None
    failed: dict[str, str] = {}
    for name in senders:
        result = results.get(name)
        if not (isinstance(result, Mapping) and result.get("ok") is True):
            if not isinstance(result, Mapping):
                failed[name] = NO_RESULT
            else:
                failed[name] = str(result.get("reason") or "failed")
    return failed
