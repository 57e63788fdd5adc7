"""Grouping: one notification for the series of one region that go strange together.

With ``group_by`` (tag names), the firing alerts of one trigger on the same table and field
whose series share those tags' values form a group; alerts raised within ``group_wait`` of the
group's first join it, and the group goes out as one notification when the wait is over.

``group_wait`` is measured on the **wall clock** (``time.monotonic``), not on data time: the group
must go out when its wait is over even if no further write ever comes (the background sender
flushes it by itself), and a backfill of an hour of data arriving in one flush still makes one
group rather than one per ``group_wait`` of data time.

Recovery notifications are not grouped: each says which alert is over. A group keeps at most
``MAX_MEMBERS`` alerts for its message and payload; its count goes on past that.
"""

from __future__ import annotations

import dataclasses
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from madcheck.config.thresholds import LEVELS
from madcheck.detect.alerts import Alert, format_number

MAX_MEMBERS = 1000
#: open groups kept at most; past it the oldest are forgotten (their notification is queued)
MAX_OPEN_GROUPS = 10_000
DEFAULT_GROUP_TEXT = (
    "MAD alert: $count series of $table.$field outside their band ($group): $series"
)

Labels = tuple[tuple[str, str], ...]


@dataclass
class Group:
    """The alerts gathered under one key, and the glue's notification for them (``handle``)."""

    table: str
    field: str
    labels: Labels
    opened_at: float
    members: list[Alert] = dataclasses.field(default_factory=list)
    count: int = 0
    top_rank: int = 0
    #: whatever the glue uses to amend the group's queued notification
    handle: object = None

    def add(self, alert: Alert) -> None:
        self.count += 1
        self.top_rank = max(self.top_rank, alert.threshold.rank)
        if len(self.members) < MAX_MEMBERS:
            self.members.append(alert)

    @property
    def severity(self) -> str:
        """The highest level among the members: the group's notification has it, and its route."""
        return LEVELS[self.top_rank]

    @property
    def label_text(self) -> str:
        """``region=eu`` / ``region=eu,dc=fra1``; a member without the tag shows it empty."""
        return ",".join(f"{name}={value}" for name, value in self.labels)


class Grouper:
    """Assigns each firing alert to the open group of its key, or opens a new one."""

    def __init__(
        self, group_by: Sequence[str], wait_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.group_by = tuple(group_by)
        self.wait_s = wait_s
        self.clock = clock
        self._open: dict[tuple[str, str, Labels], Group] = {}

    def labels_of(self, alert: Alert) -> Labels:
        tags = dict(alert.tags)
        return tuple((name, tags.get(name, "")) for name in self.group_by)

    def open_for(self, alert: Alert) -> Group | None:
        """The group of ``alert``'s key still gathering (its wait not over), if any; the caller
        adds the alert to it (``Group.add``) if its message can still take it."""
        group = self._open.get((alert.table, alert.field, self.labels_of(alert)))
        if group is not None and self.clock() - group.opened_at < self.wait_s:
            return group
        return None

    def restart(self, alert: Alert) -> Group:
        """A new group holding ``alert`` (none was open, or the open one's message is out)."""
        opened = self.clock()
        key = (alert.table, alert.field, self.labels_of(alert))
        self._open.pop(key, None)
        if len(self._open) >= MAX_OPEN_GROUPS:
            self._forget_closed(opened)
        group = Group(alert.table, alert.field, key[2], opened)
        group.add(alert)
        self._open[key] = group
        return group

    def _forget_closed(self, now: float) -> None:
        for key in [k for k, g in self._open.items() if now - g.opened_at >= self.wait_s]:
            del self._open[key]
        while len(self._open) >= MAX_OPEN_GROUPS:
            del self._open[next(iter(self._open))]


def series_item(alert: Alert) -> str:
    """One series in a group's list: its tags and value."""
    return f"{alert.tags_text or 'no tags'} ({format_number(alert.value)})"


def utf16_length(text: str) -> int:
    """Length as Discord and Twilio count it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def series_list(members: Sequence[Alert], count: int, budget: int) -> str:
    """The longest list of ``members`` that fits ``budget`` characters, then ``and N more``."""
    items = [series_item(alert) for alert in members]
    shown: list[str] = []
    used = 0
    for position, item in enumerate(items):
        rest = count - position - 1
        tail = f" and {rest} more" if rest else ""
        size = utf16_length(item) + (2 if shown else 0)
        if used + size + utf16_length(tail) > budget:
            break
        shown.append(item)
        used += size
    left = count - len(shown)
    if not shown:
        return f"{left} series"
    return ", ".join(shown) + (f" and {left} more" if left else "")


def render_group(template: str, group: Group, limit: int) -> str:
    """The group's notification text, its ``$series`` list as long as fits in ``limit``."""
    first = group.members[0]
    variables = {
        "count": str(group.count),
        "group": group.label_text,
        "table": group.table,
        "field": group.field,
        "severity": group.severity,
        "time": first.variables()["time"],
    }
    marker = "\x00series\x00"
    skeleton = string.Template(template).safe_substitute({**variables, "series": marker})
    budget = limit - utf16_length(skeleton.replace(marker, ""))
    return skeleton.replace(marker, series_list(group.members, group.count, max(budget, 0)))


def group_context(group: Group) -> dict[str, object]:
    """The structured payload of a group notification (``alert`` in the notifier's JSON)."""
    return {
        "state": "firing",
        "kind": "group",
        "table": group.table,
        "field": group.field,
        "group": dict(group.labels),
        "severity": group.severity,
        "count": group.count,
        "time": group.members[0].variables()["time"],
        "alerts": [alert.as_dict() for alert in group.members],
    }
