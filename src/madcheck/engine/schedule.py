"""``every:`` and ``cron:`` schedules, computed as InfluxDB 3 computes them.

Read in ``influxdb3_processing_engine`` (``ScheduleTriggerRunner``) and its catalog's trigger
parsing:

- ``every:DURATION`` is parsed like the ``humantime`` crate (``10s``, ``1m``, ``1h 30m``,
  ``500ms``; integers with units, spaces allowed between the parts), at most one year. The first
  call is at the next multiple of the duration since the epoch (in milliseconds) after the trigger
  starts, each later one exactly one duration after the previous *scheduled* time.
- ``cron:EXPR`` is an expression of the Rust ``cron`` crate (0.15): six fields, or seven with a
  year, **seconds first**: ``sec min hour day-of-month month day-of-week [year]``, in UTC. Each
  field is ``*``, a number, ``a-b``, a step ``*/n``, ``a/n`` or ``a-b/n`` (``n`` at most the
  field's largest value), or a comma-separated list of those; the two day fields also take ``?``
  (as ``*``). Months may be ``JAN``..``DEC`` or ``January``..``December``, days of the week
  ``SUN``..``SAT`` or ``Sunday``..``Saturday`` (also ``Tues``, ``Thurs``; numbers 1..7, Sunday =
  1, as that crate counts), names in any case, ranges of names (``MON-FRI``) but no step on a
  single name; a day must match both day fields; years run from 1970 to 2100. ``@yearly``,
  ``@monthly``, ``@weekly`` (Sundays), ``@daily`` and ``@hourly`` stand for whole expressions.
  The first call is at the first time strictly after the trigger starts. ``L``, ``W`` and ``#``
  (later versions of the crate) are refused, as InfluxDB 3 refuses them.
  ``madcheck test schedule_plugin --schedule`` reads its expression the same way
  (``next_cron_time``).
- A call that runs late does not skip times: the engine sleeps until the next scheduled time,
  which has already passed, so the missed calls follow at once, in order, each with its own
  scheduled time.

This is a parser of our own rather than a library: Python's cron libraries read five-field Unix
expressions (Sunday = 0, seconds last, day fields ORed), which would disagree with InfluxDB on
the very expressions users copy from it.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_NS_PER_S = 1_000_000_000
#: humantime's units (``M`` is a month, ``m`` a minute), as nanoseconds
_HUMANTIME_UNITS: dict[str, int] = {
    **dict.fromkeys(("nanos", "nsec", "ns"), 1),
    **dict.fromkeys(("usec", "us"), 1_000),
    **dict.fromkeys(("millis", "msec", "ms"), 1_000_000),
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), _NS_PER_S),
    **dict.fromkeys(("minutes", "minute", "mins", "min", "m"), 60 * _NS_PER_S),
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h"), 3_600 * _NS_PER_S),
    **dict.fromkeys(("days", "day", "d"), 86_400 * _NS_PER_S),
    **dict.fromkeys(("weeks", "week", "w"), 604_800 * _NS_PER_S),
    **dict.fromkeys(("months", "month", "M"), 2_630_016 * _NS_PER_S),
    **dict.fromkeys(("years", "year", "y"), 31_557_600 * _NS_PER_S),
}
_DURATION_PART = re.compile(r"\s*(\d+)\s*([A-Za-z]+)")
_ONE_YEAR_NS = _HUMANTIME_UNITS["year"]
_NS_PER_MS = 1_000_000
_MAX_YEAR = 2100


class ScheduleError(ValueError):
    """A schedule InfluxDB 3 would refuse (or this engine cannot run); the message says why."""


def parse_every(text: str) -> int:
    """``every:``'s duration in nanoseconds (at least 1 ms, at most one year)."""
    compact = text.strip()
    total = 0
    position = 0
    while position < len(compact):
        match = _DURATION_PART.match(compact, position)
        if match is None or match.group(2) not in _HUMANTIME_UNITS:
            raise ScheduleError(
                f"every:{text}: couldn't parse to duration (write e.g. 10s, 1m, 1h 30m, 500ms)"
            )
        total += int(match.group(1)) * _HUMANTIME_UNITS[match.group(2)]
        position = match.end()
    if not compact:
        raise ScheduleError("every: needs a duration, e.g. every:1m")
    if total > _ONE_YEAR_NS:
        raise ScheduleError(f"every:{text}: don't support every schedules of over 1 year")
    if total < _NS_PER_MS:  # InfluxDB 3 divides by the duration in milliseconds
        raise ScheduleError(f"every:{text}: the interval must be at least 1ms")
    return total


@dataclass(frozen=True)
class Every:
    """``every:DURATION``."""

    interval_ns: int

    def first_after(self, now_ns: int) -> int:
        """The next multiple of the interval (in whole milliseconds) after ``now_ns``."""
        step_ms = self.interval_ns // _NS_PER_MS
        return (now_ns // _NS_PER_MS // step_ms + 1) * step_ms * _NS_PER_MS

    def next_after(self, scheduled_ns: int) -> int | None:
        return scheduled_ns + self.interval_ns


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_NAMES = (
    "JANUARY",
    "FEBRUARY",
    "MARCH",
    "APRIL",
    "MAY",
    "JUNE",
    "JULY",
    "AUGUST",
    "SEPTEMBER",
    "OCTOBER",
    "NOVEMBER",
    "DECEMBER",
)
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DAY_NAMES = ("SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY")
_DAY_ALIASES = {"TUES": 3, "THURS": 5}
#: the crate's shorthands (exactly these spellings, lower case)
_SHORTCUTS = {
    "@yearly": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 1",
    "@daily": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
#: ``test schedule_plugin``'s schedule when none is given: the next whole second
DEFAULT_TEST_SCHEDULE = "* * * * * *"


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    #: takes ``?`` for ``*`` (the two day fields)
    any_allowed: bool = False


def _named(*spellings: tuple[str, ...], start: int) -> dict[str, int]:
    return {name: start + i for words in spellings for i, name in enumerate(words)}


_FIELDS = (
    _Field("seconds", 0, 59, {}),
    _Field("minutes", 0, 59, {}),
    _Field("hours", 0, 23, {}),
    _Field("day of month", 1, 31, {}, any_allowed=True),
    _Field("month", 1, 12, _named(_MONTHS, _MONTH_NAMES, start=1)),
    _Field(
        "day of week",
        1,
        7,
        {**_named(_DAYS, _DAY_NAMES, start=1), **_DAY_ALIASES},
        any_allowed=True,
    ),
    _Field("year", 1970, _MAX_YEAR, {}),
)


def _value(text: str, spec: _Field) -> int:
    name = spec.names.get(text.upper())
    if name is not None:
        return name
    if not text.isascii() or not text.isdigit():
        raise ScheduleError(f"{spec.name}: {text!r} is not a number or a name")
    number = int(text)
    if not spec.low <= number <= spec.high:
        raise ScheduleError(f"{spec.name}: {number} is outside {spec.low}..{spec.high}")
    return number


def _parse_field(text: str, spec: _Field) -> tuple[int, ...]:
    allowed: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if base == "*" or (base == "?" and spec.any_allowed):
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            if first.isdigit() != last.isdigit():
                raise ScheduleError(f"{spec.name}: range {base!r} mixes a number and a name")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise ScheduleError(f"{spec.name}: range {base!r} runs backwards")
        elif base:
            if slash and not base.isdigit():
                raise ScheduleError(f"{spec.name}: a step needs a number or a range, not {base!r}")
            low = _value(base, spec)
            high = spec.high if slash else low
        else:
            raise ScheduleError(f"{spec.name}: empty item in {text!r}")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit():
                raise ScheduleError(f"{spec.name}: step {step_text!r} is not a whole number")
            step = int(step_text)
            if not 1 <= step <= spec.high:
                raise ScheduleError(f"{spec.name}: step {step} is outside 1..{spec.high}")
        allowed.update(range(low, high + 1, step))
    return tuple(sorted(allowed))


@dataclass(frozen=True)
class Cron:
    """``cron:EXPR``: the allowed values of each field (see the module docstring)."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    years: tuple[int, ...]

    @classmethod
    def parse(cls, expression: str) -> Cron:
        text = _SHORTCUTS.get(expression.strip(), expression)
        parts = text.split()
        if len(parts) not in (6, 7):
            raise ScheduleError(
                f"cron:{expression}: expected 6 or 7 fields, seconds first "
                "(sec min hour day-of-month month day-of-week [year]), e.g. cron:0 */5 * * * *"
            )
        if len(parts) == 6:
            parts.append("*")
        try:
            values = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        except ScheduleError as error:
            raise ScheduleError(f"cron:{expression}: {error}") from None
        return cls(*values)

    def next_time(self, after: datetime) -> datetime | None:
        """``next_after`` for a ``datetime`` (naive is read as local time): a UTC datetime."""
        found = self.next_after(int(after.timestamp()) * _NS_PER_S)
        return None if found is None else datetime.fromtimestamp(found // _NS_PER_S, tz=UTC)

    def first_after(self, now_ns: int) -> int | None:
        return self.next_after(now_ns)

    def next_after(self, after_ns: int) -> int | None:
        """The first matching whole second strictly after ``after_ns``, or None before 2101."""
        moment = datetime.fromtimestamp(after_ns // _NS_PER_S, tz=UTC) + timedelta(seconds=1)
        while moment.year <= _MAX_YEAR:
            if moment.year not in self.years:
                later = [year for year in self.years if year > moment.year]
                if not later:
                    return None
                moment = datetime(later[0], 1, 1, tzinfo=UTC)
                continue
            if moment.month not in self.months:
                moment = _next_month(moment)
                continue
            # isoweekday: Monday 1 .. Sunday 7; the cron crate counts Sunday 1 .. Saturday 7
            if moment.day not in self.days or moment.isoweekday() % 7 + 1 not in self.weekdays:
                moment = moment.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            found = _time_of_day(moment, self.hours, self.minutes, self.seconds)
            if found is None:
                moment = moment.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            return int(found.timestamp()) * _NS_PER_S
        return None


def _next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    return datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)


def _time_of_day(
    moment: datetime, hours: tuple[int, ...], minutes: tuple[int, ...], seconds: tuple[int, ...]
) -> datetime | None:
    """The first (hour, minute, second) of the sets at or after ``moment``'s, on its day."""
    start = (moment.hour, moment.minute, moment.second)
    for hour in hours[bisect_left(hours, start[0]) :]:
        for minute in minutes[bisect_left(minutes, start[1]) if hour == start[0] else 0 :]:
            same = hour == start[0] and minute == start[1]
            index = bisect_left(seconds, start[2]) if same else 0
            if index < len(seconds):
                return moment.replace(hour=hour, minute=minute, second=seconds[index])
    return None


Schedule = Every | Cron


def parse_schedule(spec: str) -> Schedule:
    """``every:...`` or ``cron:...`` (the prefix included)."""
    prefix, _, rest = spec.strip().partition(":")
    if prefix == "every":
        return Every(parse_every(rest))
    if prefix == "cron":
        if not rest.strip():
            raise ScheduleError("cron: needs an expression, e.g. cron:0 */5 * * * *")
        return Cron.parse(rest.strip())
    raise ScheduleError(f"not a schedule: {spec!r}")


def next_cron_time(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that the cron ``expression`` (no ``cron:``
    prefix) matches, as a UTC datetime: ``test schedule_plugin --schedule``'s call time."""
    found = Cron.parse(expression).next_time(after)
    if found is None:
        raise ScheduleError(f"cron schedule never triggers: {expression}")
    return found


def call_time(scheduled_ns: int) -> datetime:
    """The ``call_time`` InfluxDB 3 hands to ``process_scheduled_call`` for a scheduled time:
    ``datetime.fromtimestamp`` of its whole seconds, naive, in the server's local time zone."""
    return datetime.fromtimestamp(scheduled_ns // _NS_PER_S)
