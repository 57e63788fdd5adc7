"""The notifier's memory of what it delivered: each alert event reaches each channel once.

A caller that timed out, or whose answer was lost, sends the same request again. Without a
memory the channels that had already received the message would get it twice, or six times
behind a hanging neighbour. So the notifier keeps, in its trigger cache, the (event id, channel)
pairs it delivered, and a pair still being sent by an earlier request (a thread left running when
that request hit ``send_deadline``), so that a retry waits for that send instead of starting a
second one.

Bounded: pairs are kept ``retention_s`` (two hours by default) and at most ``max_entries`` of
them (the oldest go first past that), and at most ``max_in_flight`` sends may be unfinished at
once, so a flood of event ids or a channel that never answers costs bounded memory and threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

Key = tuple[str, str]

RETENTION_S = 7200.0
MAX_ENTRIES = 50_000
MAX_IN_FLIGHT = 256


class Claim(Enum):
    """What a request may do about one (event, channel) pair."""

    #: delivered before: do not send it again
    DELIVERED = "delivered"
    #: an earlier request is still sending it: wait for that one
    IN_FLIGHT = "in flight"
    #: nobody has it: send it, then call ``finish``
    MINE = "mine"
    #: too many sends unfinished: fail it for now, the caller retries later
    BUSY = "busy"


class DeliveryLog:
    """Thread-safe; shared by every call of one notifier trigger (overlapping ones too)."""

    def __init__(
        self,
        retention_s: float = RETENTION_S,
        max_entries: int = MAX_ENTRIES,
        max_in_flight: int = MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retention_s = retention_s
        self.max_entries = max_entries
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._delivered: OrderedDict[Key, float] = OrderedDict()
        self._in_flight: dict[Key, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._delivered)

    def claim(self, key: Key) -> tuple[Claim, threading.Event | None]:
        """Decide what to do about ``key``; with ``IN_FLIGHT``, the event set when it ends."""
        with self._lock:
            self._prune()
            if key in self._delivered:
                return Claim.DELIVERED, None
            running = self._in_flight.get(key)
            if running is not None:
                return Claim.IN_FLIGHT, running
            if len(self._in_flight) >= self.max_in_flight:
                return Claim.BUSY, None
            self._in_flight[key] = threading.Event()
            return Claim.MINE, None

    def finish(self, key: Key, delivered: bool) -> None:
        """The send of a claimed pair ended; remember it if it was delivered."""
        with self._lock:
            if delivered:
                self._delivered[key] = self._clock()
                self._delivered.move_to_end(key)
                self._prune()
            done = self._in_flight.pop(key, None)
        if done is not None:
            done.set()

    def _prune(self) -> None:
        horizon = self._clock() - self.retention_s
        while self._delivered:
            key, when = next(iter(self._delivered.items()))
            if when >= horizon and len(self._delivered) <= self.max_entries:
                break
            del self._delivered[key]
