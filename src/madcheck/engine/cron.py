"""The next time a cron schedule fires, for ``madcheck test schedule_plugin --schedule``.

InfluxDB 3 reads ``--schedule`` with the Rust ``cron`` crate: six or seven fields, seconds first
(``sec min hour day-of-month month day-of-week [year]``), ``*``/``?``, numbers, ``a-b`` ranges,
``/step``, comma lists, month names (``JAN``) and day names (``MON``); day-of-week counts
``1`` = Sunday to ``7`` = Saturday, and every field must match (day-of-month AND day-of-week).
The default, ``* * * * * *``, is the next whole second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DEFAULT_SCHEDULE = "* * * * * *"
_SEARCH_YEARS = 100
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MAX_FIELD_LENGTH = 200


class CronError(ValueError):
    """A schedule the cron syntax does not allow, or one that never fires."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means low + i


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 1, 7, _DAYS),
    _Field("year", 1970, 2099),
)


def next_fire_time(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (UTC, whole seconds) that ``schedule`` matches."""
    parts = schedule.split()
    if len(parts) not in (6, 7):
        raise CronError(
            f"invalid schedule {schedule!r}: expected 6 or 7 fields, seconds first "
            "(sec min hour day-of-month month day-of-week [year]), e.g. '0 */5 * * * *'"
        )
    seconds, minutes, hours, days, months, weekdays, *rest = (
        _values(text, field) for text, field in zip(parts, _FIELDS, strict=False)
    )
    years = rest[0] if rest else set(range(1970, 2100))
    start = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    day = start.date()
    for _ in range(366 * _SEARCH_YEARS):
        cron_weekday = (day.isoweekday() % 7) + 1  # Sunday = 1
        if (
            day.year in years
            and day.month in months
            and day.day in days
            and cron_weekday in weekdays
        ):
            first = start if day == start.date() else None
            found = _first_time_of_day(day, first, hours, minutes, seconds)
            if found is not None:
                return found
        day += timedelta(days=1)
        if day.year > max(years):
            break
    raise CronError(f"schedule {schedule!r} never fires after {start:%Y-%m-%d %H:%M:%S} UTC")


def _first_time_of_day(
    day: date, first: datetime | None, hours: set[int], minutes: set[int], seconds: set[int]
) -> datetime | None:
    for hour in sorted(hours):
        for minute in sorted(minutes):
            for second in sorted(seconds):
                candidate = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
                if first is None or candidate >= first:
                    return candidate
    return None


def _values(text: str, field: _Field) -> set[int]:
    if len(text) > _MAX_FIELD_LENGTH:
        raise CronError(f"the {field.name} field is too long")
    values: set[int] = set()
    for item in text.split(","):
        values |= _item_values(item, field)
    return values


def _item_values(item: str, field: _Field) -> set[int]:
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        step = _number(step_text, field, "step")
        if step < 1:
            raise CronError(f"the {field.name} field has a step of 0")
    if span in ("*", "?"):
        low, high = field.low, field.high
    elif "-" in span:
        start, _, end = span.partition("-")
        low, high = _number(start, field), _number(end, field)
    else:
        low = _number(span, field)
        high = field.high if slash else low
    if not field.low <= low <= high <= field.high:
        raise CronError(f"the {field.name} field {item!r} is out of range {field.low}-{field.high}")
    return set(range(low, high + 1, step))


def _number(text: str, field: _Field, what: str = "value") -> int:
    upper = text.strip().upper()
    if upper in field.names and what == "value":
        return field.low + field.names.index(upper)
    if not upper.isdigit():
        raise CronError(f"the {field.name} field has an invalid {what} {text!r}")
    return int(upper)
