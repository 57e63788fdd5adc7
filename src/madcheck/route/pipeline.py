"""The stages between "the detector produced alerts" and "the outbox", chained in one place.

Order, as in Alertmanager's notify pipeline: inhibition (severity), then silences and
maintenance windows, then the repeat gate (``repeat_interval``). Each alert leaves with a fate:

* ``send``: on to the outbox (the glue records it under its own state: firing, resolved, ...);
* ``suppressed``: flapping (``state_change_count``), recorded, not sent (the detector's verdict);
* ``inhibited``: a higher level of the same series and field is firing; recorded, not sent;
* ``silenced``: inside a silence or maintenance window; recorded, not sent;
* ``withheld``: a repeat within ``repeat_interval``; counted in a log line, not recorded (as
  before this stage existed);
* ``hidden``: a resolved event that only closes an incident for the inhibitor (recovery is tracked
  for it without ``notify_recovery``); neither sent nor recorded.

An alert that a stage holds back goes no further, so a silenced alert does not restart the
repeat gate's interval, and an inhibited one does not touch the silences' count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from madcheck.detect.alerts import Alert
from madcheck.detect.lifecycle import RepeatGate
from madcheck.route.inhibit import Inhibitor

SEND = "send"
SUPPRESSED = "suppressed"
INHIBITED = "inhibited"
SILENCED = "silenced"
WITHHELD = "withheld"
HIDDEN = "hidden"
#: fates written to the alerts table under their own name
RECORDED_FATES = frozenset({SUPPRESSED, INHIBITED, SILENCED})

#: answers whether an alert is silenced: the silence's description, or None
Silencer = Callable[[Alert], str | None]


@dataclass
class Router:
    """One trigger's chain of stages; a stage left ``None`` is off."""

    inhibitor: Inhibitor | None = None
    repeats: RepeatGate | None = None
    #: whether resolved events are notified; without it they only close incidents
    notify_recovery: bool = True

    def route(
        self, alerts: Iterable[Alert], silencer: Silencer | None = None
    ) -> list[tuple[Alert, str]]:
        """Each alert with its fate, in the order given (data time within each series)."""
        sorted_alerts: Iterable[tuple[Alert, bool]] = (
            self.inhibitor.sort(alerts)
            if self.inhibitor is not None
            else ((alert, False) for alert in alerts)
        )
        return [
            (alert, self._fate(alert, inhibited, silencer)) for alert, inhibited in sorted_alerts
        ]

    def _fate(self, alert: Alert, inhibited: bool, silencer: Silencer | None) -> str:
        if alert.resolved and not self.notify_recovery:
            return HIDDEN
        if inhibited:
            return INHIBITED
        if alert.suppressed:
            return SUPPRESSED
        if silencer is not None and silencer(alert) is not None:
            return SILENCED
        if self.repeats is not None and not self.repeats.admits(alert):
            return WITHHELD
        return SEND
