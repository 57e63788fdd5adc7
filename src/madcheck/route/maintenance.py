"""Maintenance windows: recurring quiet periods from the TOML config ("Mon-Fri 02:00-03:00").

Errors name the window and the key but never repeat a value or an unknown key: like every
message about the ``config_file_path`` file, they must not leak a file that is not the user's.

A window has matchers (the silences' ``key=value;...`` form), a set of weekdays, a start and an
end time of day and a time zone. An alert whose data time, read in that zone, falls inside the
window on one of its days is silenced. A window whose end is not after its start runs across
midnight: ``from = "22:00"``, ``to = "02:00"`` on ``Fri`` covers Friday 22:00 to Saturday 02:00.
``to = "24:00"`` is the end of the day. Daylight saving is the zone's business: the wall-clock
times are those of the day, so 02:00-03:00 is an hour shorter or longer on the switch nights.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from madcheck.detect.alerts import Alert
from madcheck.route.silences import Matcher, SilenceError, parse_matchers

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
#: keys of one ``[[maintenance]]`` table
WINDOW_KEYS = frozenset({"match", "days", "from", "to", "timezone", "comment"})
MAX_WINDOWS = 100


class MaintenanceError(ValueError):
    """A maintenance window the config cannot use; the message names the key."""


def _day(name: str) -> int:
    text = name.strip().lower()
    for names in (DAY_NAMES, _FULL_NAMES):
        if text in names:
            return names.index(text)
    raise MaintenanceError("days names something that is not a weekday (Mon, Tue, ... Sun)")


def parse_days(text: str) -> frozenset[int]:
    """``Mon-Fri``, ``Sat,Sun``, ``Fri-Mon`` (wrapping), ``Mon-Wed,Fri``; ``*`` or ``daily``: every
    day. Weekdays as ``datetime.weekday()`` numbers (Monday 0)."""
    if not isinstance(text, str) or len(text) > 100:
        raise MaintenanceError('days must be a short string such as "Mon-Fri" or "Sat,Sun"')
    if text.strip().lower() in ("*", "daily", "every day"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        if not part.strip():
            raise MaintenanceError("days has an empty part (two commas in a row?)")
        first, dash, last = part.partition("-")
        start = _day(first)
        end = _day(last) if dash else start
        days.update((start + step) % 7 for step in range((end - start) % 7 + 1))
    return frozenset(days)


def parse_time_of_day(key: str, text: object, allow_24: bool = False) -> int:
    """``"02:00"`` as minutes after midnight; ``"24:00"`` too where ``allow_24``."""
    match = _TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise MaintenanceError(f'{key} must be a time of day such as "02:00"')
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise MaintenanceError(f"{key} is not a time of day (00:00 to 23:59, or 24:00 for to)")
    return hours * 60 + minutes


def load_zone(name: str, loader: Callable[[str], tzinfo] = ZoneInfo) -> tzinfo:
    """The zone called ``name``; raises ``MaintenanceError`` with a fix when it cannot be had
    (an unknown name, or no time zone database: zoneinfo needs the system's or ``tzdata``)."""
    if name.upper() in ("UTC", "Z"):
        return UTC  # needs no database
    if not name or len(name) > 64 or not name.isprintable():
        raise MaintenanceError('timezone must be a zone name such as "Europe/Berlin"')
    try:
        return loader(name)
    except ZoneInfoNotFoundError:
        raise MaintenanceError(
            'timezone is not known here: check the name (e.g. "Europe/Berlin"), and '
            "if it is right the server has no time zone database: install the tzdata package "
            "into the engine's Python (influxdb3 install package tzdata)"
        ) from None
    except (ValueError, OSError):
        raise MaintenanceError('timezone is not a zone name such as "Europe/Berlin"') from None


@dataclass(frozen=True)
class MaintenanceWindow:
    matchers: tuple[Matcher, ...]
    days: frozenset[int]
    start_min: int
    end_min: int
    zone: tzinfo
    label: str

    def covers(self, alert: Alert, tags: Mapping[str, str]) -> bool:
        if not all(matcher.holds(alert, tags) for matcher in self.matchers):
            return False
        try:
            local = datetime.fromtimestamp(alert.time_ns / 1e9, tz=self.zone)
        except (OverflowError, OSError, ValueError):
            return False  # a time beyond the calendar is in no window
        minute = local.hour * 60 + local.minute
        if self.start_min < self.end_min:
            return local.weekday() in self.days and self.start_min <= minute < self.end_min
        # across midnight: the evening part on a listed day, the morning part on the day after
        if minute >= self.start_min:
            return local.weekday() in self.days
        return minute < self.end_min and (local - timedelta(days=1)).weekday() in self.days

    def describe(self) -> str:
        return f"maintenance window {self.label}"


def window_from_table(
    position: int, table: object, loader: Callable[[str], tzinfo] = ZoneInfo
) -> MaintenanceWindow:
    """One ``[[maintenance]]`` table as a window; raises ``MaintenanceError`` naming the key."""
    where = f"maintenance window {position}"
    if not isinstance(table, Mapping):
        raise MaintenanceError(f"{where} must be a table ([[maintenance]] with keys)")
    unknown = [key for key in table if key not in WINDOW_KEYS]  # not repeated: see above
    if unknown:
        raise MaintenanceError(
            f"{where} has {len(unknown)} unknown key(s); known: {', '.join(sorted(WINDOW_KEYS))}"
        )
    try:
        match = table.get("match")
        if not isinstance(match, str):
            raise MaintenanceError('match is required, e.g. match = "region=eu"')
        matchers = parse_matchers(match)
        days = parse_days(table.get("days", "*"))
        start = parse_time_of_day("from", table.get("from"))
        end = parse_time_of_day("to", table.get("to"), allow_24=True)
        if start == end:
            raise MaintenanceError("from and to are equal: the window would be empty")
        zone_name = table.get("timezone", "UTC")
        if not isinstance(zone_name, str):
            raise MaintenanceError('timezone must be a zone name such as "Europe/Berlin"')
        zone = load_zone(zone_name, loader)
    except SilenceError:
        raise MaintenanceError(
            f"{where}: match must be matchers key=value joined by ';' (at most 32, no control "
            "characters)"
        ) from None
    except MaintenanceError as error:
        raise MaintenanceError(f"{where}: {error}") from None
    day_text = ",".join(DAY_NAMES[d].title() for d in sorted(days))
    # no matcher in the label: it is logged, and log lines never repeat the file's text
    label = (
        f"{position} ({day_text} "
        f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} {zone_name})"
    )
    return MaintenanceWindow(matchers, days, start, end, zone, label)


def parse_windows(
    value: object, loader: Callable[[str], tzinfo] = ZoneInfo
) -> tuple[MaintenanceWindow, ...]:
    """The ``maintenance`` setting (a TOML array of tables) as windows."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise MaintenanceError(
            "maintenance windows are set in the TOML file (config_file_path) as [[maintenance]] "
            "tables, not as a trigger argument"
        )
    if not isinstance(value, list):
        raise MaintenanceError("maintenance must be an array of tables: [[maintenance]]")
    if len(value) > MAX_WINDOWS:
        raise MaintenanceError(f"at most {MAX_WINDOWS} maintenance windows")
    return tuple(window_from_table(i, table, loader) for i, table in enumerate(value, start=1))


def window_covering(
    windows: tuple[MaintenanceWindow, ...], alert: Alert
) -> MaintenanceWindow | None:
    if not windows:
        return None
    tags = dict(alert.tags)
    return next((w for w in windows if w.covers(alert, tags)), None)
