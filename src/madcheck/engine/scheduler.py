"""Runs one scheduled trigger's calls at the times its schedule gives, as InfluxDB 3 does.

From ``run_schedule_plugin`` in ``influxdb3_processing_engine``: the runner sleeps until the next
scheduled time, advances the schedule, then runs the call; without ``run_async`` it waits for the
call before sleeping again, so a call slower than the interval makes the next times pass, and
their calls then follow at once, in order, each with its own scheduled time (none is skipped).
With ``run_async`` every call starts at its time and calls may overlap (here at most
``max_async_calls`` at once; later ones wait for a free slot). Times are the wall clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from madcheck.engine.schedule import Schedule

logger = logging.getLogger("madcheck.engine")


class ScheduleWorker:
    """A thread that calls ``run_call(scheduled_ns)`` at each scheduled time until stopped.

    ``run_call`` returns ``False`` when the trigger must stop (disabled after a failing call).
    """

    def __init__(
        self,
        name: str,
        schedule: Schedule,
        run_call: Callable[[int], bool],
        *,
        run_async: bool,
        max_async_calls: int,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._schedule = schedule
        self._run_call = run_call
        self._run_async = run_async
        self._clock_ns = clock_ns
        self._stop = threading.Event()
        self._slots = threading.Semaphore(max_async_calls)
        self._running = 0
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"schedule-{name}", daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """No call starts after this; a running one finishes."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread and for the calls still running (bounded by ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._thread.join(timeout)
        with self._condition:
            self._condition.wait_for(
                lambda: not self._running,
                None if deadline is None else max(0.0, deadline - time.monotonic()),
            )

    def _loop(self) -> None:
        scheduled = self._schedule.first_after(self._clock_ns())
        while scheduled is not None:
            wait_s = (scheduled - self._clock_ns()) / 1e9
            if wait_s > 0:
                if self._stop.wait(wait_s):
                    return
                continue  # woken (perhaps a little early on the wall clock): look again
            if self._stop.is_set():
                return
            current, scheduled = scheduled, self._schedule.next_after(scheduled)
            if self._run_async:
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                threading.Thread(
                    target=self._call, args=(current, True), name=f"{self._thread.name}-call"
                ).start()
            elif not self._call(current, False):
                return

    def _call(self, scheduled_ns: int, release: bool) -> bool:
        with self._condition:
            self._running += 1
        keep_going = True
        try:
            keep_going = self._run_call(scheduled_ns)
        except Exception:
            # plugin failures are handled inside run_call; this is the host's own failure
            logger.exception("scheduled trigger %s failed", self._thread.name)
        finally:
            if release:
                self._slots.release()
            with self._condition:
                self._running -= 1
                self._condition.notify_all()
        if not keep_going:
            self._stop.set()
        return keep_going
