"""`test schedule_plugin --schedule`: cron read as the `cron` crate InfluxDB 3 uses reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from madcheck.engine.cron import CronError, next_fire_time

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
    ],
)
def test_next_fire_time(schedule: str, expected: datetime) -> None:
    assert next_fire_time(schedule, AFTER) == expected


def test_a_time_in_another_zone_is_taken_as_the_same_instant() -> None:
    local = AFTER.astimezone(timezone(timedelta(hours=5)))
    assert next_fire_time("0 0 * * * *", local) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "schedule",
    ["* * * * *", "60 * * * * *", "* * * 0 * *", "a * * * * *", "*/0 * * * * *", "5-1 * * * * *",
     "0 0 0 31 APR *", "0 0 0 1 1 * 2020"],
)  # fmt: skip
def test_bad_or_never_firing_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(CronError):
        next_fire_time(schedule, AFTER)
