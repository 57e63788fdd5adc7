"""The rolling window must agree exactly with DESIGN.md §3's definition on any stream."""

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from madcheck.detect.window import RollingMAD

values = st.one_of(
    st.integers(min_value=-5, max_value=5),  # many duplicates and constant runs
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.sampled_from([0.1, 0.2, 0.30000000000000004, -0.0, 1e-300]),
)


def reference(window: list[float]) -> tuple[float, float]:
    median = statistics.median(window)
    return median, statistics.median([abs(x - median) for x in window])


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=1, max_value=25), stream=st.lists(values, max_size=120))
def test_matches_the_definition_on_random_streams(size, stream):
    window = RollingMAD(size)
    recent: list[float] = []
    for value in stream:
        window.add(float(value))
        recent = [*recent, float(value)][-size:]
        assert window.values() == recent
        assert window.full == (len(recent) == size)
        assert window.median_and_mad() == reference(recent)


def test_hand_computed_example():
    window = RollingMAD(5)
    for value in [10, 12, 11, 13, 50]:
        window.add(value)
    # sorted 10 11 12 13 50 -> median 12; deviations 2 1 0 1 38 -> sorted 0 1 1 2 38 -> MAD 1
    assert window.median_and_mad() == (12, 1)
    window.add(12)  # evicts 10: 11 12 13 50 12 -> sorted 11 12 12 13 50 -> median 12
    # deviations 1 0 0 1 38 -> 0 0 1 1 38 -> MAD 1
    assert window.median_and_mad() == (12, 1)


def test_even_window_averages_the_middle_pair():
    window = RollingMAD(4)
    for value in [1, 2, 4, 10]:
        window.add(value)
    # median (2+4)/2 = 3; deviations 2 1 1 7 -> 1 1 2 7 -> MAD (1+2)/2 = 1.5
    assert window.median_and_mad() == (3, 1.5)


def test_large_window_stays_exact():
    window = RollingMAD(10_000)
    stream = [((i * 7919) % 10_007) / 3 for i in range(25_000)]
    for value in stream:
        window.add(value)
    assert window.median_and_mad() == reference(stream[-10_000:])
