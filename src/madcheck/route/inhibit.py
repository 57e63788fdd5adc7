"""Severity inhibition: conditions on one field of one series are one incident at its highest level.

Three rules, applied to the firing alerts of a call in order:

* a point that fires several conditions of one series and field sends only the highest level's
  alert; the others are ``inhibited``;
* while an alert of a series and field is open (fired, not yet resolved), alerts of a lower level
  of the same series and field are ``inhibited``;
* an alert of a higher level is never held back by a lower one: a warning that escalates to
  critical is sent at once (the repeat gate keys on the alert id, and the critical alert has its
  own).

"Open" ends with the alert's ``resolved`` event, which the detector reports after
``recovery_count`` normal points; the plugin therefore tracks recovery whenever a field has
conditions of different levels, even without ``notify_recovery`` (the events then only close
the incident). A resolved event of an alert that was only ever inhibited is inhibited too: no
one was told it had started.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from madcheck.detect.alerts import Alert, Tags

Incident = tuple[str, str, Tags]


def incident_of(alert: Alert) -> Incident:
    return (alert.table, alert.field, alert.tags)


class Inhibitor:
    """Remembers, per incident, the open alerts and their level; bounded by the series seen."""

    __slots__ = ("_inhibited", "_open")

    def __init__(self) -> None:
        #: incident -> {alert_id: rank} of alerts sent (or passed on) and not resolved
        self._open: dict[Incident, dict[str, int]] = {}
        #: alert ids inhibited since their last resolved event and never passed on
        self._inhibited: set[str] = set()

    def sort(self, alerts: Iterable[Alert]) -> Iterator[tuple[Alert, bool]]:
        """Each alert with whether it is inhibited, in the order given."""
        batch = list(alerts)
        # the highest rank fired at each (incident, point): lower ones at that point are inhibited
        top: dict[tuple[Incident, int], int] = {}
        for alert in batch:
            if not alert.resolved and not alert.suppressed:
                key = (incident_of(alert), alert.time_ns)
                top[key] = max(top.get(key, -1), alert.threshold.rank)
        for alert in batch:
            yield alert, self._inhibits(alert, top)

    def _inhibits(self, alert: Alert, top: dict[tuple[Incident, int], int]) -> bool:
        incident = incident_of(alert)
        key = alert.alert_id
        if alert.resolved:
            opened = self._open.get(incident)
            if opened is not None:
                opened.pop(key, None)
                if not opened:
                    del self._open[incident]
            if key in self._inhibited:
                self._inhibited.discard(key)
                return True
            return False
        if alert.suppressed:
            return False
        rank = alert.threshold.rank
        opened = self._open.get(incident, {})
        higher = max((r for k, r in opened.items() if k != key), default=-1)
        if rank < top[(incident, alert.time_ns)] or rank < higher:
            if key not in opened:
                self._inhibited.add(key)
            return True
        self._open.setdefault(incident, {})[key] = rank
        self._inhibited.discard(key)
        return False
