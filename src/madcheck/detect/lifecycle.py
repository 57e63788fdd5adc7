"""The alert lifecycle after a rule fires: when an alert is over, and how often it may repeat.

The seed's alerts are fire-and-forget. Two optional, small state machines add a lifecycle:

* ``RecoveryWatch`` (one per series and threshold, fed every verdict by the detector): an alert
  that fired and was not suppressed as flapping opens an episode; ``needed`` consecutive normal
  verdicts close it, and the detector reports a ``resolved`` event carrying the episode's start.
* ``RepeatGate`` (one per trigger, fed the batch's events in data-time order): a still-firing
  alert that was passed on less than ``interval_ns`` ago (data time) is held back. A resolved
  event ends the episode, so the next firing of that alert is news again and passes at once.

Both measure on the rows' own time, like the duration rule, so a backfill behaves as live data.
"""

from __future__ import annotations

from collections import Counter

from madcheck.config.durations import format_duration_ns
from madcheck.detect.alerts import Alert


class RecoveryWatch:
    """Counts consecutive normal verdicts of one series and threshold after it alerted.

    An outlier restarts the count (the episode is still going on). The detector calls ``reset``
    on a row without a usable value for this field, restarting the count as it restarts the
    rules' running counts: a gap or a garbled value is no evidence that the series is healthy.
    """

    __slots__ = ("needed", "normal_run", "since_ns")

    def __init__(self, needed: int) -> None:
        self.needed = needed
        self.normal_run = 0
        #: data time of the alert that opened the episode; None while no alert is open
        self.since_ns: int | None = None

    def update(self, outlier: bool, opens: bool, time_ns: int) -> int | None:
        """Feed one verdict (``opens``: the rule fired on it and was not suppressed). Returns the
        episode's start time when this verdict completes the recovery, otherwise None."""
        if opens:
            if self.since_ns is None:
                self.since_ns = time_ns
            self.normal_run = 0
            return None
        if self.since_ns is None:
            return None
        if outlier:
            self.normal_run = 0
            return None
        self.normal_run += 1
        if self.normal_run < self.needed:
            return None
        since = self.since_ns
        self.since_ns = None
        self.normal_run = 0
        return since

    def reset(self) -> None:
        self.normal_run = 0


class RepeatGate:
    """At most one notification per ``interval_ns`` of data time for each still-firing alert.

    The interval runs from the last firing the gate passed on, whatever became of its delivery:
    the gate sits before the delivery path and knows nothing of it, and getting an alert through
    a notifier outage is the delivery path's job (its retries), not a reason to send repeats.
    Held-back firings are counted per alert for one summary line per batch (``report``).
    """

    __slots__ = ("_last_sent_ns", "_withheld", "interval_ns")

    def __init__(self, interval_ns: int) -> None:
        self.interval_ns = interval_ns
        self._last_sent_ns: dict[str, int] = {}
        self._withheld: Counter[str] = Counter()

    def admits(self, alert: Alert) -> bool:
        """Whether ``alert`` may be notified now. A resolved event always passes and ends the
        episode; a suppressed one is never notified and does not touch the gate."""
        if alert.resolved:
            self._last_sent_ns.pop(alert.alert_id, None)
            return True
        if alert.suppressed:
            return True
        key = alert.alert_id
        last = self._last_sent_ns.get(key)
        if last is None or alert.time_ns - last >= self.interval_ns:
            self._last_sent_ns[key] = alert.time_ns
            return True
        self._withheld[f"{alert.threshold.describe()} [{alert.tags_text}] ({key})"] += 1
        return False

    def report(self, shown: int = 5) -> str | None:
        """What was held back since the last report (None if nothing), naming at most ``shown``
        alerts, most repeated first."""
        if not self._withheld:
            return None
        common = self._withheld.most_common()
        detail = ", ".join(f"{name} x{n}" for name, n in common[:shown])
        if len(common) > shown:
            detail += f" and {len(common) - shown} more"
        total = self._withheld.total()
        self._withheld.clear()
        return (
            f"withheld {total} repeat(s) of {len(common)} still-firing alert(s) "
            f"(repeat_interval={format_duration_ns(self.interval_ns)}): {detail}"
        )
