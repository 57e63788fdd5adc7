import pytest

from madcheck.config.durations import parse_backoff_range, parse_duration_ns
from madcheck.config.thresholds import Threshold, parse_thresholds

MIN = 60 * 10**9


@pytest.mark.parametrize(
    "value",
    [
        "temp:2.5:20:5@load:3:10:2m",  # after the shell ate the seed's inner quotes
        'temp:"2.5":20:5@load:"3":10:2m',  # k quoted with "
        "temp:'2.5':20:5@load:'3':10:2m",  # k quoted with '
        '"temp:2.5:20:5@load:3:10:2m"',  # whole value wrapped in quotes
        "'temp:\"2.5\":20:5@load:3:10:2m'",  # both
        " temp:2.5:20:5 @ load:3:10:2m ",
    ],
)
def test_every_spelling_of_the_seed_example_gives_the_same_conditions(value):
    thresholds, problems = parse_thresholds(value)
    assert problems == []
    assert thresholds == [
        Threshold("temp", 2.5, 20, count=5),
        Threshold("load", 3.0, 10, duration_ns=2 * MIN),
    ]


def test_field_names_may_contain_dots_and_colons():
    thresholds, _ = parse_thresholds("cpu.usage.idle:3:10:4@ns:metric:2:5:1")
    assert [t.field for t in thresholds] == ["cpu.usage.idle", "ns:metric"]


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("500us", 500_000),
        ("250ms", 250_000_000),
        ("30s", 30 * 10**9),
        ("2m", 2 * MIN),
        ("2min", 2 * MIN),
        ("1h", 60 * MIN),
        ("1d", 24 * 60 * MIN),
        ("1w", 7 * 24 * 60 * MIN),
        ("1h30m", 90 * MIN),
    ],
)
def test_duration_units(text, ns):
    assert parse_duration_ns(text) == ns
    (threshold,), problems = parse_thresholds(f"temp:3:10:{text}")
    assert problems == [] and threshold.duration_ns == ns and threshold.rule == "duration"


def test_bad_segments_are_skipped_with_a_reason_and_good_ones_kept():
    thresholds, problems = parse_thresholds(
        "temp:2.5:20:5@bad@load:x:10:5@t2:3:1:5@t3:3:10:0@t4:3:10:5y@@t5:-1:10:5@temp:2.5:20:5"
    )
    assert thresholds == [Threshold("temp", 2.5, 20, count=5)]
    assert len(problems) == 8
    joined = "\n".join(problems)
    assert "4 parts" in joined  # "bad"
    assert "k must be a number" in joined
    assert "window_count must be between 2" in joined
    assert "at least 1" in joined
    assert "count (e.g. 5) or a duration" in joined
    assert "empty" in joined
    assert "positive" in joined
    assert "duplicate" in joined


def test_window_count_range():
    good, _ = parse_thresholds("a:3:2:1@b:3:10000:1@c:3:100000:1")
    assert [t.window_count for t in good] == [2, 10_000, 100_000]
    bad, problems = parse_thresholds("a:3:100001:1")
    assert bad == [] and "between 2 and 100000" in problems[0]


def test_toml_native_lists():
    thresholds, problems = parse_thresholds([["temp", 2.5, 20, 5], ["load", 3.0, 10, "2m"]])
    assert problems == []
    assert thresholds == [
        Threshold("temp", 2.5, 20, count=5),
        Threshold("load", 3.0, 10, duration_ns=2 * MIN),
    ]
    _, problems = parse_thresholds([["temp", True, 20, 5], ["x", 3, 2.5, 5], 7])
    assert len(problems) == 3


def test_threshold_describes_itself_as_written():
    (count, duration), _ = parse_thresholds("temp:2.5:20:5@load:3:10:120s")
    assert count.describe() == "temp:2.5:20:5"
    assert duration.describe() == "load:3:10:2m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1s..4s", (1.0, 4.0)), ("250ms", (0.25, 0.25)), ("0", (0.0, 0.0)), ("0..1.5", (0.0, 1.5))],
)
def test_backoff_ranges(text, expected):
    assert parse_backoff_range(text) == expected


@pytest.mark.parametrize("text", ["4s..1s", "soon", "-1", "1s..", "inf"])
def test_bad_backoff_ranges(text):
    with pytest.raises(ValueError):
        parse_backoff_range(text)
