"""The MAD floor (issue 16): the band is never narrower than ``k * mad_floor`` on each side, nor
than ``k * mad_floor_pct / 100 * |median|``; verdicts checked against the definition."""

from __future__ import annotations

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from madcheck.config.settings import load_config
from madcheck.config.thresholds import Threshold
from madcheck.detect.detector import Detector

START_NS = 1_700_000_000 * 10**9


def _rows(values: list[float]) -> list[dict]:
    return [
        {"host": "a", "temp": float(v), "time": START_NS + i * 10**9} for i, v in enumerate(values)
    ]


def _outlier_times(threshold: Threshold, values: list[float]) -> list[int]:
    """Each outlier fires a count-1 rule: the alerts are the outlier verdicts."""
    detector = Detector("cpu", [threshold])
    return [alert.time_ns for alert in detector.process(_rows(values), ["host"]).alerts]


def _by_definition(threshold: Threshold, values: list[float]) -> list[int]:
    """DESIGN.md §3 with the floor: outlier iff outside median ± k·max(MAD, floor)."""
    times = []
    size = threshold.window_count
    for i in range(size - 1, len(values)):
        window = values[i - size + 1 : i + 1]
        median = statistics.median(window)
        mad = statistics.median([abs(x - median) for x in window])
        spread = max(mad, threshold.mad_floor, threshold.mad_floor_pct / 100 * abs(median))
        k = threshold.k
        if values[i] < median - k * spread or values[i] > median + k * spread:
            times.append(START_NS + i * 10**9)
    return times


def test_a_flat_series_alerts_on_any_change_without_a_floor_and_not_within_it() -> None:
    values = [20.0] * 10 + [20.1, 20.0, 20.5, 20.0, 23.0]
    plain = Threshold("temp", 3.0, 10, count=1)
    floored = Threshold("temp", 3.0, 10, count=1, mad_floor=0.5)  # band 20 ± 1.5
    assert len(_outlier_times(plain, values)) == 3  # MAD is 0: 20.1 is an outlier
    assert _outlier_times(floored, values) == [START_NS + 14 * 10**9]  # only 23.0


def test_the_floor_in_percent_follows_the_series_scale() -> None:
    big = [1000.0] * 10 + [1010.0, 1000.0, 1040.0]
    floored = Threshold("temp", 3.0, 10, count=1, mad_floor_pct=1.0)  # 1% of 1000: band ± 30
    assert _outlier_times(floored, big) == [START_NS + 12 * 10**9]


def test_alerts_report_the_band_they_were_judged_with() -> None:
    values = [20.0] * 10 + [23.0]
    detector = Detector("cpu", [Threshold("temp", 3.0, 10, count=1, mad_floor=0.5)])
    (alert,) = detector.process(_rows(values), ["host"]).alerts
    assert (alert.mad, alert.lower, alert.upper) == (0.0, 18.5, 21.5)
    assert alert.as_dict()["lower"] == 18.5


def test_mad_floor_arguments_reach_every_threshold_and_bad_ones_are_refused() -> None:
    base = {"measurement": "cpu", "senders": "http", "http_webhook_url": "http://127.0.0.1:1/h"}
    config = load_config(
        {**base, "mad_thresholds": "temp:3:20:5@load:2:10:1m", "mad_floor": "0.5"}, {}
    ).config
    assert [t.mad_floor for t in config.thresholds] == [0.5, 0.5]
    assert all(t.mad_floor_pct == 0 for t in config.thresholds)
    for bad in ("-1", "nan", "inf", "lots", "true"):
        try:
            load_config({**base, "mad_thresholds": "temp:3:20:5", "mad_floor_pct": bad}, {})
        except ValueError as error:
            assert "mad_floor_pct" in str(error)
        else:
            raise AssertionError(f"mad_floor_pct={bad} was accepted")


values_strategy = st.lists(
    st.one_of(
        st.sampled_from([0.0, 1.0, 1.5, 2.0, -3.0, 100.0]),  # ties: MAD 0 often
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    min_size=3,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    values=values_strategy,
    window=st.integers(2, 12),
    k=st.sampled_from([0.5, 1.0, 2.5, 3.0]),
    floor=st.sampled_from([0.0, 0.1, 1.0, 50.0]),
    floor_pct=st.sampled_from([0.0, 0.5, 10.0]),
)
def test_verdicts_with_a_floor_match_the_definition(
    values: list[float], window: int, k: float, floor: float, floor_pct: float
) -> None:
    threshold = Threshold("temp", k, window, count=1, mad_floor=floor, mad_floor_pct=floor_pct)
    assert _outlier_times(threshold, values) == _by_definition(threshold, values)
