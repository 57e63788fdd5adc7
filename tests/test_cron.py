"""`test schedule_plugin --schedule` and `cron:` triggers: cron read as the `cron` crate (0.15)
InfluxDB 3 uses reads it (one parser, `madcheck.engine.schedule`, serves both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from madcheck.engine.schedule import ScheduleError, next_cron_time

# Tuesday 1 December 2026, 20:15:30.5 UTC
AFTER = datetime(2026, 12, 1, 20, 15, 30, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("* * * * * *", datetime(2026, 12, 1, 20, 15, 31, tzinfo=UTC)),
        ("0 */5 * * * *", datetime(2026, 12, 1, 20, 20, 0, tzinfo=UTC)),
        ("30 15 20 * * *", datetime(2026, 12, 2, 20, 15, 30, tzinfo=UTC)),  # strictly after
        ("0 0 9 * * MON", datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)),
        ("0 0 9 * * 1", datetime(2026, 12, 6, 9, 0, 0, tzinfo=UTC)),  # 1 is Sunday
        ("0 0 9 * * 2-3", datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)),  # Mon-Tue, Tue 9:00 passed
        ("0 0 0 1 JAN,JUL *", datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)),
        ("0 0 0 29 FEB * 2028", datetime(2028, 2, 29, 0, 0, 0, tzinfo=UTC)),
        ("0 0 12 13 * FRI", datetime(2027, 8, 13, 12, 0, 0, tzinfo=UTC)),  # day AND weekday
        ("10-20/5 16 20 * * ?", datetime(2026, 12, 1, 20, 16, 10, tzinfo=UTC)),
        ("0 0 9 ? * TUES-THURS", datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)),  # crate's aliases
        ("0 0 0 1 January *", datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2026, 12, 6, 0, 0, 0, tzinfo=UTC)),  # Sundays
        ("@hourly", datetime(2026, 12, 1, 21, 0, 0, tzinfo=UTC)),
        ("0 0 0 1 1 * 2100", datetime(2100, 1, 1, 0, 0, 0, tzinfo=UTC)),  # the crate's last year
    ],
)
def test_next_cron_time(schedule: str, expected: datetime) -> None:
    assert next_cron_time(schedule, AFTER) == expected


def test_a_time_in_another_zone_is_taken_as_the_same_instant() -> None:
    local = AFTER.astimezone(timezone(timedelta(hours=5)))
    assert next_cron_time("0 0 * * * *", local) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "schedule",
    ["* * * * *", "60 * * * * *", "* * * 0 * *", "a * * * * *", "*/0 * * * * *", "5-1 * * * * *",
     "0 0 0 31 APR *", "0 0 0 1 1 * 2020",
     # what the crate's grammar refuses: `?` outside the day fields, a step past the field's
     # range, a range mixing a number and a name, a step on a single name, other shorthands
     "? * * * * *", "0 ? * * * *", "*/60 * * * * *", "0 0 0 * * 3-THURS", "0 0 0 * * Tues/2",
     "@annually", "@midnight", "@YEARLY", "0 0 0 * * 1 2101"],
)  # fmt: skip
def test_bad_or_never_firing_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ScheduleError):
        next_cron_time(schedule, AFTER)
