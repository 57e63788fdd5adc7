"""Alerts the notifier has not confirmed yet, kept until it does.

A dead or slow notifier must neither lose alerts nor stall the database's write path. So every
alert joins a bounded FIFO, and a background sender (``madcheck.notify.sender``) delivers from its
head, oldest first; whatever fails waits for a later pass. Calls of the trigger add alerts while
the sender is on the network, so the queue has a lock that is never held across a request: adding
an alert never waits for the notifier.

Three kinds of failure are told apart, because they call for different patience:

- the notifier is unavailable (no connection, timeout, 5xx without per-sender results, 401, 404,
  429 ...): the pass stops, and the whole outbox waits a backoff that doubles per failed pass up
  to a cap, or the notifier's ``Retry-After`` when that is longer, so a dead notifier costs one
  try per backoff period;
- the notifier answered but some channels failed (502 with per-sender results): the alert is
  narrowed to the failed senders, so a delivered message is never sent twice, and only that alert
  waits its own backoff (or the longest ``retry_after`` those senders reported); the pass goes on
  with the next one;
- the notifier rejected the request as malformed (400): sending the same bytes again cannot work,
  so the alert is dropped and reported.

The queue knows nothing of MAD or HTTP: the caller supplies a ``send`` function returning a
``Delivery`` (see ``madcheck.notify.retry``) and reads the ``PassReport`` to log what happened.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from madcheck.notify.retry import Delivery

Clock = Callable[[], float]
BAD_REQUEST = 400
_MAX_DOUBLINGS = 32  # 2**32 times any base is far past every sensible cap
#: the longest ``Retry-After`` honoured, so a confused notifier cannot park alerts for days
MAX_RETRY_AFTER_S = 3600.0


@dataclass(eq=False)  # two alike alerts are still two alerts
class PendingAlert:
    """One alert on its way to the notifier.

    It names its senders rather than carrying their settings (webhook URLs, credentials): the
    payload is built from the trigger's current config at each try, so a corrected webhook URL
    also reaches the alerts already waiting, and no secret sits in the queue. ``context`` holds
    the alert's ``event_id``, the same at every try, by which the notifier recognises a retry.
    """

    text: str
    context: Mapping[str, Any]
    senders: tuple[str, ...]
    summary: str
    #: what the message is, for log lines: ``alert``, ``recovery``
    kind: str = "alert"
    tries: int = 0
    not_before: float = 0.0
    #: called once, under the outbox's lock, when a message queued with a wait falls due: it
    #: writes the final text of a message that gathered members meanwhile (a group)
    complete: Callable[[PendingAlert], None] | None = None


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


Send = Callable[[PendingAlert], Delivery]


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
        #: the time source for backoff; tests replace it to avoid sleeping
        self.clock = clock
        self._items: deque[PendingAlert] = deque()
        self._lock = threading.Lock()
        #: held for a whole pass, so two senders (an old one stopping, its replacement) never
        #: send the same alert at once
        self.pass_lock = threading.Lock()
        self._failed_passes = 0
        self._next_pass_at = 0.0
        #: alerts added, and dropped because the outbox was full, since it was created
        self.added_total = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def oldest(self) -> PendingAlert | None:
        """The alert at the head, the next to be tried."""
        with self._lock:
            return self._items[0] if self._items else None

    def configure(self, capacity: int, backoff: float, backoff_max: float) -> int:
        """Apply new settings (the trigger's arguments changed); returns how many were dropped."""
        with self._lock:
            self.capacity, self.backoff, self.backoff_max = capacity, backoff, backoff_max
            return self._trim()

    def retry_now(self) -> None:
        """Forget the backoff (the settings changed: a fixed URL or token deserves a try now)."""
        with self._lock:
            self._failed_passes = 0
            self._next_pass_at = 0.0
            for item in self._items:
                item.not_before = 0.0

    def keep_senders(self, configured: Iterable[str]) -> list[PendingAlert]:
        """Forget senders no longer configured; returns the alerts left with none (removed)."""
        known = set(configured)
        orphans: list[PendingAlert] = []
        kept: deque[PendingAlert] = deque()
        with self._lock:
            for item in self._items:
                item.senders = tuple(name for name in item.senders if name in known)
                (kept if item.senders else orphans).append(item)
            self._items = kept
        return orphans

    def add(self, item: PendingAlert) -> int:
        """Queue ``item`` behind the others; returns how many old alerts were dropped for it."""
        with self._lock:
            self._items.append(item)
            self.added_total += 1
            return self._trim()

    def amend(self, item: PendingAlert, change: Callable[[], None]) -> bool:
        """Run ``change`` (it adds to what ``item`` will say) if ``item`` is still waiting for its
        first try: queued, never tried, not yet due and not completed. Returns False otherwise,
        when the caller must start a new message. ``change`` runs under the lock that also
        guards ``complete``, so a member is either in the message or gets a new one, never
        both and never neither."""
        with self._lock:
            if item.tries or item.complete is None or self.clock() >= item.not_before:
                return False
            if not any(waiting is item for waiting in self._items):
                return False
            change()
            return True

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

    @property
    def backing_off(self) -> bool:
        """True after a failed pass, until the notifier answers again."""
        return self._failed_passes > 0

    def retry_in(self) -> float | None:
        """Seconds until the outbox tries again, when it is backing off; ``None`` otherwise."""
        if not self._items or not self._failed_passes:
            return None
        return max(0.0, self._next_pass_at - self.clock())

    def seconds_until_due(self) -> float | None:
        """How long until an alert may be tried: 0 when one is due, ``None`` when empty."""
        with self._lock:
            if not self._items:
                return None
            now = self.clock()
            soonest = min(item.not_before for item in self._items)
            return max(0.0, self._next_pass_at - now, soonest - now)

    def deliver(self, send: Send, keep_going: Callable[[], bool] = lambda: True) -> PassReport:
        """Try every due alert, oldest first, while ``keep_going()``; call it with ``pass_lock``
        held. ``send`` runs without the queue's lock, so alerts can be added meanwhile."""
        report = PassReport()
        if self.clock() < self._next_pass_at:
            return report
        with self._lock:
            pending = list(self._items)
        for item in pending:
            if not keep_going():
                return report
            if not self._due_and_held(item):
                continue
            delivery = send(item)
            with self._lock:
                if not self._settle(item, delivery, report):
                    return report
        return report

    def _due_and_held(self, item: PendingAlert) -> bool:
        """Whether ``item`` is due and still queued, completing it if it waited for members;
        under the lock ``amend`` takes."""
        with self._lock:
            if item.not_before > self.clock():
                return False
            if not any(waiting is item for waiting in self._items):
                return False
            if item.complete is not None:
                complete, item.complete = item.complete, None
                complete(item)
            return True

    def _settle(self, item: PendingAlert, delivery: Delivery, report: PassReport) -> bool:
        """Apply one delivery's result (lock held); False when the pass must stop."""
        failed = failed_senders(delivery.answer, item.senders)
        if delivery.ok and failed:
            # A 2xx settles every sender except those its results say failed outright.
            failed = {n: r for n, r in failed.items() if r != NO_RESULT} or None
        if (delivery.ok and not failed) or failed == {}:
            self._discard(item)
            report.delivered.append(item)
        elif failed is not None:
            item.senders = tuple(name for name in item.senders if name in failed)
            item.tries += 1
            wait = max(self.delay(item.tries), retry_after_of(delivery.answer, item.senders))
            item.not_before = self.clock() + wait
            report.partial.append((item, failed))
        elif delivery.status == BAD_REQUEST or (
            delivery.status is None and not delivery.retryable
        ):  # the notifier refused it, or it could not even be sent: it never will be
            self._discard(item)
            report.rejected.append((item, delivery.reason))
        else:
            item.tries += 1
            self._failed_passes += 1
            wait = max(self.delay(self._failed_passes), _bounded(delivery.retry_after))
            self._next_pass_at = self.clock() + wait
            report.unavailable = delivery.reason
            return False
        self._failed_passes = 0  # the notifier answered
        self._next_pass_at = 0.0
        return True

    def _discard(self, item: PendingAlert) -> None:
        """Remove ``item`` if still queued (a full outbox or a config change may have dropped it
        while it was on its way)."""
        for index, waiting in enumerate(self._items):
            if waiting is item:
                del self._items[index]
                return


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


def retry_after_of(answer: Any, senders: Iterable[str]) -> float:
    """The longest ``retry_after`` (seconds) the notifier reported for these senders, or 0."""
    results = answer.get("results") if isinstance(answer, Mapping) else None
    if not isinstance(results, Mapping):
        return 0.0
    waits = [0.0]
    for name in senders:
        result = results.get(name)
        if isinstance(result, Mapping):
            waits.append(_bounded(result.get("retry_after")))
    return max(waits)


def _bounded(value: object) -> float:
    """A reported wait as seconds in [0, MAX_RETRY_AFTER_S]; anything unreadable is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    if value != value:  # NaN
        return 0.0
    return float(min(max(value, 0.0), MAX_RETRY_AFTER_S))
