"""The background sender: one thread per trigger delivering its outbox, off the write path.

InfluxDB 3 answers writers only once every data-writes trigger has room in its queue of WAL
flushes, so a call that waits on the network can stall every writer of the server. Calls
therefore only put alerts in the outbox; this thread posts them, retries with the outbox's
backoff on its own clock (a dead notifier needs no further writes to be retried), and hands each
pass's ``PassReport`` to a recorder. It never logs or touches the engine: in InfluxDB 3 only the
engine's own threads may call ``influxdb3_local``, and log lines belong to a call.

The thread holds its owner (the trigger's state) only by weak reference: when the state is
dropped (the trigger was deleted, the cache cleared) it stops by itself; when the state is
rebuilt, ``stop`` ends it after the request in progress. It is started lazily by ``ensure_running``
and started again there if it ever died.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from madcheck.notify.outbox import Outbox, PassReport, Send

#: every sender of this process, for ``wait_for_all``
_LIVE: weakref.WeakSet[OutboxSender] = weakref.WeakSet()
_LOCK_POLL_S = 0.2
_CRASH_PAUSE_S = 1.0
#: shortest pause after a pass that settled nothing, so ``outbox_backoff=0`` cannot spin
MIN_PAUSE_S = 0.05


class OutboxSender:
    """Delivers ``outbox`` in a daemon thread while ``owner`` lives and ``stop`` was not called.

    ``send_for(owner)`` gives the send function of one pass (built from the owner's current
    settings); ``record(report)`` receives every pass's report and ``crashed(text)`` any error a
    pass raised. Both run in the sender's thread and must not block.
    """

    def __init__(
        self,
        owner: object,
        outbox: Outbox,
        send_for: Callable[[Any], Send],
        record: Callable[[PassReport], None],
        crashed: Callable[[str], None],
        name: str = "madcheck-outbox",
    ) -> None:
        self._owner = weakref.ref(owner)
        self.outbox = outbox
        self._send_for = send_for
        self._record = record
        self._crashed = crashed
        self._name = name
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: notified after every pass; guards ``_passing``
        self._progress = threading.Condition()
        self._passing = False
        weakref.finalize(owner, self.stop)
        _LIVE.add(self)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_running(self, wake: bool = True) -> None:
        """Start the thread if it is not running (first use, or it died); ``wake`` it so alerts
        just added go out now rather than at its next planned try."""
        with self._start_lock:
            if self._stopped:
                return
            if not self.running:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        if wake:
            self._wake.set()

    def stop(self) -> None:
        """End the thread after the request in progress, without waiting for it."""
        self._stopped = True
        self._wake.set()
        with self._progress:
            self._progress.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (tests); True if it is not running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def wait_until(self, done: Callable[[Outbox], bool], timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until no pass runs and ``done(outbox)`` holds."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while True:
                if not self._passing and done(self.outbox):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped:
                    return not self._passing and done(self.outbox)
                self._progress.wait(remaining)

    def _run(self) -> None:
        while not self._stopped:
            owner = self._owner()
            if owner is None:
                break
            send = self._send_for(owner)
            del owner  # the pass must not keep a dropped trigger's state alive
            self._wake.clear()
            failed = False
            progressed = True
            if self._acquire_pass():
                with self._progress:
                    self._passing = True
                try:
                    report = self.outbox.deliver(send, lambda: not self._stopped)
                    progressed = bool(report.delivered or report.rejected)
                    self._record(report)
                except Exception as error:  # a bug must not end delivery for good
                    self._crashed(f"{type(error).__name__}: {error}")
                    failed = True
                finally:
                    self.outbox.pass_lock.release()
                    with self._progress:
                        self._passing = False
                        self._progress.notify_all()
            del send
            wait = self.outbox.seconds_until_due()
            if failed:  # the same error would come back at once: pause as after a failure
                wait = max(self.outbox.delay(1), _CRASH_PAUSE_S)
            elif wait == 0 and not progressed:
                wait = MIN_PAUSE_S
            if wait is None or wait > 0:
                self._wake.wait(wait)

    def _acquire_pass(self) -> bool:
        """Take the outbox's pass lock (a sender being replaced may still hold it); False if
        stopped meanwhile. A pass begun after a stop sends nothing: it asks ``keep_going``
        before each alert."""
        while not self._stopped:
            if self.outbox.pass_lock.acquire(timeout=_LOCK_POLL_S):
                return True
        return False


def live_senders() -> list[OutboxSender]:
    """Every sender of this process whose owner still lives."""
    return list(_LIVE)
