"""Each rule of DESIGN.md §3 on small, hand-computed examples."""

import math

from madcheck.config.thresholds import Threshold
from madcheck.detect.detector import (
    SKIP_BAD_TIME,
    SKIP_MISSING,
    SKIP_NOT_FINITE,
    SKIP_NOT_NUMERIC,
    Detector,
)
from madcheck.detect.rules import FlipHistory

S = 1_000_000_000


def series(values, host="a", start=0, step=10, field="temp"):
    return [{"host": host, field: v, "time": (start + i * step) * S} for i, v in enumerate(values)]


def test_no_verdict_until_the_window_is_full():
    detector = Detector("cpu", [Threshold("temp", 1, 5, count=1)])
    result = detector.process(series([10, 10, 10, 10]), ["host"])
    assert result.outliers == {} and result.alerts == []


def test_outlier_is_strictly_outside_the_band():
    # window [10, 11, 12, 13, V]: for V=14 sorted 10..14, median 12, devs 2 1 0 1 2 -> MAD 1
    # band with k=2: [10, 14] -> 14 is inside (not strictly greater), 15 is outside.
    detector = Detector("cpu", [Threshold("temp", 2, 5, count=1)])
    assert detector.process(series([10, 11, 12, 13, 14]), ["host"]).alerts == []
    other = Detector("cpu", [Threshold("temp", 2, 5, count=1)])
    (alert,) = other.process(series([10, 11, 12, 13, 15]), ["host"]).alerts
    # sorted 10 11 12 13 15: median 12, devs 2 1 0 1 3 -> MAD 1 -> band [10, 14]
    assert (alert.value, alert.median, alert.mad, alert.lower, alert.upper) == (15, 12, 1, 10, 14)
    assert alert.tags == (("host", "a"),)
    assert alert.time_ns == 40 * S


# A calm base of 9 values: sorted 9 10 10 11 11 11 12 12 13 -> median 11, MAD 1 (devs
# 0 0 0 1 1 1 1 2 2). With k=3 the band is [8, 14]; while fewer than half the window are
# outliers the median stays 11 and values of 50 or 100 are outliers. Times are 10 s apart, so
# the first value after the base is at t=90.
BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]


def test_count_rule_fires_after_n_consecutive_outliers_then_restarts():
    detector = Detector("cpu", [Threshold("temp", 3, 9, count=2)])
    result = detector.process(series([*BASE, 100, 10, 100, 100, 100, 100]), ["host"])
    # t90 O (1), t100 N (reset), t110 O (1), t120 O (2: fire, restart), t130 O (1),
    # t140: five 100s of nine -> median 100 -> normal.
    assert [a.time_ns // S for a in result.alerts] == [120]
    assert result.outliers["temp"] == 4


def test_duration_rule_uses_the_rows_own_time():
    detector = Detector("cpu", [Threshold("load", 3, 9, duration_ns=25 * S)])
    result = detector.process(series([*BASE, 50, 50, 50, 50], field="load"), ["host"])
    # the run starts at t90; t110 spans 20 s, t120 spans 30 s >= 25 s -> fires at t120 only
    assert [a.time_ns // S for a in result.alerts] == [120]
    assert result.alerts[0].rule == "duration"


def test_duration_run_broken_by_a_normal_value_starts_again():
    detector = Detector("cpu", [Threshold("load", 3, 9, duration_ns=20 * S)])
    result = detector.process(series([*BASE, 50, 11, 50, 50, 50], field="load"), ["host"])
    # t90 O starts a run, t100 N ends it; t110 starts anew and t130 spans 20 s -> fires
    assert [a.time_ns // S for a in result.alerts] == [130]


def test_rows_are_processed_in_time_order_per_series_whatever_the_batch_order():
    rows = series([*BASE, 100, 10, 100, 100, 100, 100])
    shuffled = rows[1::2] + rows[::2]
    a = Detector("cpu", [Threshold("temp", 3, 9, count=2)]).process(rows, ["host"])
    b = Detector("cpu", [Threshold("temp", 3, 9, count=2)]).process(shuffled, ["host"])
    assert [x.time_ns for x in a.alerts] == [x.time_ns for x in b.alerts] == [120 * S]


def test_series_are_independent():
    rows = series([*BASE, 100, 10, 100, 100], host="a") + series(BASE * 2, host="b")
    result = Detector("cpu", [Threshold("temp", 3, 9, count=2)]).process(rows, ["host"])
    assert [a.tags for a in result.alerts] == [(("host", "a"),)]


def test_missing_and_non_numeric_values_reset_the_running_count():
    thresholds = [Threshold("temp", 3, 9, count=2)]
    steady = Detector("cpu", thresholds).process(series([*BASE, 100, 100, 100, 100]), ["host"])
    assert [a.time_ns // S for a in steady.alerts] == [100, 120]
    gappy = Detector("cpu", thresholds).process(
        series([*BASE, 100, None, 100, "hot", 100, math.nan, 100]), ["host"]
    )
    assert gappy.alerts == []  # each gap reset the run: never two outliers in a row
    assert gappy.outliers["temp"] == 4
    assert gappy.skipped[SKIP_MISSING] == 1
    assert gappy.skipped[SKIP_NOT_NUMERIC] == 1
    assert gappy.skipped[SKIP_NOT_FINITE] == 1


def test_nan_inf_bools_and_huge_ints_never_enter_the_window():
    detector = Detector("cpu", [Threshold("temp", 3, 3, count=1)])
    result = detector.process(
        series([1, math.inf, -math.inf, math.nan, 10**400, True, 2, 3]), ["host"]
    )
    assert result.skipped[SKIP_NOT_FINITE] == 4
    assert result.skipped[SKIP_NOT_NUMERIC] == 1
    assert result.alerts == []  # window [1, 2, 3]: nothing odd


def test_rows_with_bad_time_are_counted_and_skipped():
    detector = Detector("cpu", [Threshold("temp", 3, 3, count=1)])
    rows = [{"temp": 1.0}, {"temp": 1.0, "time": "now"}, {"temp": 1.0, "time": 1.5}, "junk"]
    result = detector.process(rows, ["host"])
    assert result.skipped[SKIP_BAD_TIME] == 3 and result.points == 0


def test_thresholds_on_one_field_and_window_share_the_window():
    detector = Detector(
        "cpu", [Threshold("temp", 2, 5, count=1), Threshold("temp", 50, 5, count=1)]
    )
    result = detector.process(series([10, 11, 12, 13, 15]), ["host"])
    assert [a.threshold.k for a in result.alerts] == [2]  # same window, different k
    assert result.outliers["temp"] == 1


def test_flip_suppression_counts_transitions_in_the_last_window_count_verdicts():
    thresholds = [Threshold("temp", 3, 9, count=2)]
    values = [*BASE, 100, 11, 100, 10, 100, 100]
    # verdicts from t80: N O N O N O O -> 5 transitions; the count rule fires at t140
    flapping = Detector("cpu", thresholds, state_change_count=5).process(series(values), ["host"])
    (alert,) = flapping.alerts
    assert alert.suppressed and alert.transitions == 5 and alert.time_ns == 140 * S
    calm = Detector("cpu", thresholds, state_change_count=6).process(series(values), ["host"])
    assert not calm.alerts[0].suppressed


def test_flip_history_window():
    history = FlipHistory(4)
    for verdict in [True, False, True, False, False, False]:
        history.update(verdict)
    # last four: T F F F -> one transition
    assert history.transitions() == 1
