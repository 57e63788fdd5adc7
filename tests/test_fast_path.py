"""The fast paths must give exactly the verdicts and alerts of DESIGN.md §3's plain definition.

The reference here is the definition written as plainly as possible: copy the window, take
``statistics.median`` of it and of the absolute deviations, compare. Streams are drawn to hit the
hard cases: duplicates and constant runs (MAD = 0), values exactly on the band's edge (small ints
with whole ``k``), ints and floats mixed, negatives, large and tiny magnitudes, even and odd
windows, several ``k`` sharing one window.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import tracemalloc
from collections import Counter
from contextlib import nullcontext
from itertools import pairwise
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madcheck.config.thresholds import Threshold
from madcheck.detect import detector as detector_module
from madcheck.detect import vectorized
from madcheck.detect import window as window_module
from madcheck.detect.detector import Detector
from madcheck.detect.window import RollingMAD

needs_numpy = pytest.mark.skipif(vectorized.numpy is None, reason="numpy is not installed")

S = 1_000_000_000

plain_values = st.one_of(
    st.integers(min_value=-6, max_value=6),  # duplicates, exact band edges
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.sampled_from([0.1, 0.2, 0.30000000000000004, -0.0, 0.0, 1e-300, 5e-324, 2.5, -2.5]),
    st.floats(min_value=1e6, max_value=1e6 + 1),  # large magnitude, tiny spread
    st.sampled_from([1.5e308, -1.5e308, 1e308]),  # sums and differences overflow
)
runs = st.tuples(plain_values, st.integers(min_value=1, max_value=12))  # constant runs
streams = st.lists(st.one_of(plain_values, runs), max_size=90).map(
    lambda items: [
        value
        for item in items
        for value in ([item[0]] * item[1] if isinstance(item, tuple) else [item])
    ]
)
k_values = st.one_of(
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 10.0]),
    st.floats(min_value=0.01, max_value=100.0),
)
k_sets = st.lists(k_values, min_size=1, max_size=4, unique=True)


def definition(window: list[float]) -> tuple[float, float]:
    median = statistics.median(window)
    return median, statistics.median([abs(x - median) for x in window])


def outside(value: float, median: float, mad: float, k: float) -> bool:
    return value < median - k * mad or value > median + k * mad


def reference_masks(stream: list[float], size: int, ks: list[float]) -> list[int | None]:
    """Per value: None before the window is full, else a bit per k that calls it an outlier."""
    masks: list[int | None] = []
    for end in range(1, len(stream) + 1):
        if end < size:
            masks.append(None)
            continue
        value = stream[end - 1]
        median, mad = definition(stream[end - size : end])
        masks.append(sum(1 << i for i, k in enumerate(ks) if outside(value, median, mad, k)))
    return masks


def advanced_masks(
    stream: list[float], size: int, ks: list[float], chunks: list[int], compact: bool = False
) -> list[int | None]:
    """The same, from RollingMAD.advance fed in the given chunk sizes (as the detector does);
    ``compact``: the window drops its sorted half after each chunk, as the detector has it do
    after each batch."""
    window = RollingMAD(size, compact)
    masks: list[int | None] = []
    position = 0
    chunk_sizes = iter(chunks)
    while position < len(stream):
        chunk = stream[position : position + next(chunk_sizes, len(stream))]
        done = 0
        while done < len(chunk):
            start = done
            done, normals, mask = window.advance(chunk, done, ks)
            pushed = done - start
            without_verdict = pushed - normals - (1 if mask else 0)
            masks += [None] * without_verdict + [0] * normals + ([mask] if mask else [])
            if mask:  # stopped at an outlier: the window is exactly as at that value
                assert window.median_and_mad() == definition(
                    stream[max(0, position + done - size) : position + done]
                )
        position += len(chunk)
        window.compact()
    return masks


#: Small windows move values with del + insert; 1 forces the memoryview path of large ones.
view_from = st.sampled_from([window_module._VIEW_FROM, 1])
#: (_BAND_FROM, _BAND_SHIFT): as shipped (no band below 2,048), or a normal band reused for
#: size // 4 updates, or for as many as the window allows (the loosest band, the most reuse).
band_settings = st.sampled_from(
    [(window_module._BAND_FROM, window_module._BAND_SHIFT), (1, 2), (1, 0)]
)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=24),
    stream=streams,
    ks=k_sets,
    chunks=st.lists(st.integers(min_value=1, max_value=15), max_size=20),
    move_from=view_from,
    band=band_settings,
    compact=st.booleans(),
)
def test_verdicts_match_the_definition(size, stream, ks, chunks, move_from, band, compact):
    values = [float(v) for v in stream]  # ints enter windows as floats (DESIGN.md §3)
    with (
        patch.object(window_module, "_VIEW_FROM", move_from),
        patch.object(window_module, "_BAND_FROM", band[0]),
        patch.object(window_module, "_BAND_SHIFT", band[1]),
    ):
        assert advanced_masks(values, size, ks, chunks, compact) == reference_masks(
            values, size, ks
        )


def test_compacted_window_keeps_its_values_and_statistics():
    window = RollingMAD(8, compact=True)
    stream = [3.0, -1.0, 7.5, 2.0, 2.0, 9.0, -4.0, 0.5, 6.0, 1.0]
    for end, value in enumerate(stream, start=1):
        window.add(value)
        window.compact()
        assert window.values() == stream[:end][-8:]
    window.compact()
    assert window.median_and_mad() == definition(stream[-8:])
    assert window.advance([100.0], 0, (3.0,)) == (1, 0, 1)


# -- SeriesBlock: every series of a window group, a batch at a time (numpy) --------------------


@needs_numpy
@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=24),
    streams=st.lists(streams, min_size=1, max_size=4),
    ks=k_sets,
    splits=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=40),
    few=st.booleans(),
    settle=st.booleans(),
)
def test_series_block_verdicts_match_the_definition(size, streams, ks, splits, few, settle):
    """Several series through one SeriesBlock, in batches of uneven sizes per series (some
    series absent from a batch), by judge (numpy) or judge_few (plain Python); ``settle``:
    judge settles values by bounds whatever the window and the batch's share of it
    (``SeriesBlock._settle``, else only from ``_SETTLE_FROM`` values on)."""
    if settle:
        patched = patch.multiple(vectorized, _SETTLE_FROM=1, _SETTLE_SHARE=1)
    else:
        patched = nullcontext()
    with patched:
        check_series_block(size, streams, ks, splits, few, settle)


def check_series_block(size, streams, ks, splits, few, uniform):
    """``uniform``: each batch has as many values of every series (as _settle needs), as long
    as they last."""
    np = vectorized.numpy
    block = vectorized.SeriesBlock(size)
    block.reserve(len(streams))
    values = [[float(v) for v in stream] for stream in streams]
    expected = [reference_masks(stream, size, ks) for stream in values]
    got: list[list[int | None]] = [[] for _ in values]
    taken = [0] * len(values)
    turn = 0
    while any(t < len(v) for t, v in zip(taken, values, strict=True)):
        rows, counts, batch = [], [], []
        for series, stream in enumerate(values):
            count = min(splits[turn % len(splits)], len(stream) - taken[series])
            turn += 0 if uniform else 1
            if count:
                rows.append(series)
                counts.append(count)
                batch += stream[taken[series] : taken[series] + count]
        turn += 1 if uniform else 0
        if not rows:  # nothing drawn for the unfinished series this time: one value of the first
            series = next(i for i, v in enumerate(values) if taken[i] < len(v))
            rows, counts, batch = [series], [1], [values[series][taken[series]]]
        if few:
            codes, windows = block.judge_few(rows, counts, batch, ks)
        else:
            judged, ordered = block.judge(
                np.array(rows), np.array(counts), np.array(batch, dtype=float), ks
            )
            codes = judged.tolist()
            windows = [list(ordered[at]) for at in range(sum(code >= 0 for code in codes))]
        verdicts = iter(windows)
        done = 0
        for series, count in zip(rows, counts, strict=True):
            for offset, code in enumerate(codes[done : done + count]):
                end = taken[series] + offset + 1
                got[series].append(None if code == -1 else code)
                if code != -1:  # the window handed back for alerts is the value's, sorted
                    window = values[series][end - size : end]
                    assert next(verdicts) == sorted(window)
            taken[series] += count
            done += count
    assert got == expected
    for series, stream in enumerate(values):
        assert block.values(series) == stream[-size:]


@needs_numpy
@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=24),
    data=st.data(),
    ks=k_sets,
    series=st.integers(min_value=1, max_value=4),
)
def test_series_block_settled_by_bounds_matches_the_definition(size, data, ks, series):
    """Full windows, every series the same number of new values (at most the window): what
    ``SeriesBlock._settle`` takes (here whatever the window and the batch's share of it)."""
    np = vectorized.numpy
    streams = [
        data.draw(st.lists(plain_values | runs.map(lambda r: r[0]), min_size=size + 1))
        for _ in range(series)
    ]
    length = min(len(stream) for stream in streams)
    values = [[float(v) for v in stream[:length]] for stream in streams]
    block = vectorized.SeriesBlock(size)
    block.reserve(series)
    for row, stream in enumerate(values):
        for value in stream[:size]:
            block.add(row, value)
    taken = size
    batches_sent = 0
    calls = []
    original = vectorized.SeriesBlock._settle

    def settle(self, *args):
        calls.append(1)
        return original(self, *args)

    with (
        patch.multiple(vectorized, _SETTLE_FROM=1, _SETTLE_SHARE=1),
        patch.object(vectorized.SeriesBlock, "_settle", settle),
    ):
        while taken < length:
            count = min(data.draw(st.integers(min_value=1, max_value=size)), length - taken)
            batch = [v for stream in values for v in stream[taken : taken + count]]
            codes, ordered = block.judge(
                np.arange(series), np.full(series, count), np.array(batch), ks
            )
            for row, stream in enumerate(values):
                for t in range(count):
                    end = taken + t + 1
                    window = stream[end - size : end]
                    median, mad = definition(window)
                    expected = sum(
                        1 << i for i, k in enumerate(ks) if outside(window[-1], median, mad, k)
                    )
                    at = row * count + t
                    assert codes[at] == expected
                    assert list(ordered[at]) == sorted(window)
            taken += count
            batches_sent += 1
    assert len(calls) == batches_sent  # _settle judged every batch
    for row, stream in enumerate(values):
        assert block.values(row) == stream[-size:]


# -- WindowRuns: full RollingMAD windows, a batch of each judged at once (numpy) -------------


@needs_numpy
@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=24),
    streams=st.lists(streams, min_size=1, max_size=4),
    ks=k_sets,
    splits=st.lists(st.integers(min_value=1, max_value=24), min_size=1, max_size=20),
    compact=st.booleans(),
    passes=st.sampled_from([1, vectorized._PASSES]),
    hand_back=st.booleans(),
)
def test_window_runs_verdicts_match_the_definition(
    size, streams, ks, splits, compact, passes, hand_back
):
    """Several full windows, each pushed batches of up to its size through WindowRuns (the
    values' own windows, the windows an alert reads, and the windows after the batch), and
    between batches now and then a value through RollingMAD.advance. ``hand_back``: a window
    with any value left for the definition is handed back untouched (``declined``) and then
    fed through RollingMAD.advance."""
    np = vectorized.numpy
    values = [[float(v) for v in stream] for stream in streams]
    values = [stream for stream in values if len(stream) > size] or [[1.0] * (size + 1)]
    expected = [reference_masks(stream, size, ks) for stream in values]
    windows = [RollingMAD(size, compact) for _ in values]
    for window, stream in zip(windows, values, strict=True):
        for value in stream[:size]:
            window.add(value)
        window.compact()
    taken = [size] * len(values)
    got: list[list[int]] = [[] for _ in values]
    turn = 0
    # hand_back, or else count unsure values one at a time (_COUNT_BUDGET: the chunks that
    # bound the memory of the counts)
    handing_back = (
        patch.multiple(vectorized, _HAND_BACK_OVER=0, _HAND_BACK_SHARE=10**9)
        if hand_back
        else patch.object(vectorized, "_COUNT_BUDGET", 1)
    )
    with patch.object(vectorized, "_PASSES", passes), handing_back:
        while any(t < len(v) for t, v in zip(taken, values, strict=True)):
            rows, batches = [], []
            for series, stream in enumerate(values):
                count = min(splits[turn % len(splits)], size, len(stream) - taken[series])
                turn += 1
                if count:
                    rows.append(series)
                    batches.append(stream[taken[series] : taken[series] + count])
            runs = vectorized.WindowRuns(
                [windows[series] for series in rows], [np.array(batch) for batch in batches]
            )
            codes = iter(runs.codes(ks).tolist())
            declined = set(runs.declined)
            for at, (series, batch) in enumerate(zip(rows, batches, strict=True)):
                if at in declined:
                    continue
                for t in range(1, len(batch) + 1):
                    got[series].append(next(codes))
                    end = taken[series] + t
                    window = values[series][end - size : end]
                    assert runs.window(at, t).tolist() == sorted(window)
            assert next(codes, None) is None
            runs.finish()
            for at, (series, batch) in enumerate(zip(rows, batches, strict=True)):
                if at in declined:  # untouched: its batch goes through advance
                    window = windows[series]
                    assert window.values() == values[series][taken[series] - size : taken[series]]
                    done = 0
                    while done < len(batch):
                        start = done
                        done, normals, mask = window.advance(batch, done, ks)
                        got[series] += [0] * normals + ([mask] if mask else [])
                        assert done - start == normals + (1 if mask else 0)
                taken[series] += len(batch)
                window = windows[series]
                assert window.values() == values[series][taken[series] - size : taken[series]]
                assert window.median_and_mad() == definition(window.values())
                if taken[series] < len(values[series]) and turn % 3 == 0:
                    value = values[series][taken[series]]
                    _, _, mask = window.advance([value], 0, ks)
                    got[series].append(mask or 0)
                    taken[series] += 1
                window.compact()
    assert got == [masks[size:] for masks in expected]  # the windows were filled first


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=1, max_value=24), stream=streams, k=k_values)
def test_is_outlier_matches_the_definition_for_every_value_tried(size, stream, k):
    """Every stream value (and a few near the band's edges) judged against each window."""
    window = RollingMAD(size)
    for end, value in enumerate(stream, start=1):
        window.add(float(value))
        if end < size:
            continue
        median, mad = definition([float(v) for v in stream[end - size : end]])
        edges = [median - k * mad, median + k * mad]
        probes = [float(v) for v in stream[max(0, end - size) : end]] + edges
        probes += [math.nextafter(x, math.inf) for x in edges]
        probes += [math.nextafter(x, -math.inf) for x in edges]
        for probe in probes:
            if math.isfinite(probe):
                assert window.is_outlier(probe, median, k) == outside(probe, median, mad, k)


def test_constant_window_has_mad_zero_and_any_other_value_is_an_outlier():
    window = RollingMAD(6)
    window.advance([7.0] * 6, 0, (3.0,))
    assert window.median_and_mad() == (7.0, 0.0)
    assert window.advance([7.0], 0, (3.0,)) == (1, 1, 0)
    assert window.advance([7.000000000000001], 0, (3.0,)) == (1, 0, 1)


def test_large_window_through_the_memoryview_path_stays_exact():
    assert window_module._VIEW_FROM <= 1_500  # this window size takes the memoryview path
    rng = random.Random(5)
    stream = [float(rng.randint(-50, 50)) for _ in range(2_500)]
    masks = advanced_masks(stream, 1_500, [1.0, 1.5], [400] * 7)
    assert masks == reference_masks(stream, 1_500, [1.0, 1.5])
    assert 1 in masks and 3 in masks  # outliers for one k only, and for both


def test_large_window_reusing_its_normal_band_stays_exact():
    """From 2,048 values on, a normal band is reused for size >> 8 updates: here 9 at 2,400."""
    rng = random.Random(11)
    size, ks = 2_400, [2.0, 3.0]
    level = [0.0] * 2_400 + [4.0] * 600 + [-3.0] * 600  # the median drifts far between reads
    stream = [round(base + rng.gauss(0.0, 1.0), 1) for base in level]  # duplicates too
    stream[2_500:2_520] = [12.0] * 20  # a burst of outliers
    chunk_sizes = [rng.randint(1, 40) for _ in range(400)]
    with patch.object(window_module, "_normal_band", wraps=window_module._normal_band) as band:
        masks = advanced_masks(stream, size, ks, chunk_sizes)
    assert masks == reference_masks(stream, size, ks)
    verdicts = len(stream) - size + 1
    assert 0 < band.call_count < verdicts / 5  # the band was read, and reused
    assert 1 in masks and 3 in masks


# -- the whole detector against a plain one ---------------------------------------------------


def plain_detector(rows, tag_names, thresholds, state_change_count, recovery_count):
    """DESIGN.md §3 (and detect/lifecycle.py's recovery) written out per row, with nothing shared
    or cached but the raw values."""
    windows: dict[tuple, list[float]] = {}
    runs: dict[tuple, list] = {}
    recoveries: dict[tuple, list] = {}  # [alert time that opened the episode, normal run]
    verdicts: dict[tuple, list[bool]] = {}
    alerts = []
    outliers: Counter[str] = Counter()
    usable = sorted(
        (r for r in rows if isinstance(r, dict) and type(r.get("time")) is int),
        key=lambda r: r["time"],
    )
    groups: dict[tuple[str, int], list[Threshold]] = {}
    for threshold in thresholds:
        groups.setdefault((threshold.field, threshold.window_count), []).append(threshold)
    for row in usable:
        tags = tuple((name, str(row[name])) for name in tag_names if row.get(name) is not None)
        for (field, size), members in groups.items():
            raw = usable_value(row.get(field))
            finite = raw is not None
            for threshold in members:
                run = runs.setdefault((tags, threshold), [0, None])
                recovery = recoveries.setdefault((tags, threshold), [None, 0])
                if not finite:
                    run[:] = [0, None]
                    recovery[1] = 0
            if not finite:
                continue
            window = windows.setdefault((tags, field, size), [])
            window.append(float(raw))
            del window[:-size]
            if len(window) < size:
                continue
            median, mad = definition(window)
            for threshold in members:
                floor = max(threshold.mad_floor, threshold.mad_floor_pct / 100 * abs(median))
                outlier = outside(float(raw), median, max(mad, floor), threshold.k)
                outliers[field] += outlier
                history = verdicts.setdefault((tags, threshold), [])
                history.append(outlier)
                del history[:-size]
                run = runs[(tags, threshold)]
                flips = sum(a != b for a, b in pairwise(history))
                transitions = flips if state_change_count >= 2 else 0
                fires = False
                if not outlier:
                    run[:] = [0, None]
                else:
                    run[0] += 1
                    if run[1] is None:
                        run[1] = row["time"]
                    if threshold.count is not None:
                        fires = run[0] >= threshold.count
                    else:
                        fires = row["time"] - run[1] >= threshold.duration_ns
                suppressed = state_change_count >= 2 and flips >= state_change_count
                point = (field, tags, threshold, float(raw), median, mad, row["time"], transitions)
                if fires:
                    run[:] = [0, None]
                    alerts.append((*point, suppressed, None))
                if not recovery_count:
                    continue
                recovery = recoveries[(tags, threshold)]
                if fires and not suppressed:
                    recovery[0] = recovery[0] if recovery[0] is not None else row["time"]
                    recovery[1] = 0
                elif recovery[0] is not None:
                    recovery[1] = 0 if outlier else recovery[1] + 1
                    if recovery[1] >= recovery_count:
                        alerts.append((*point, False, recovery[0]))
                        recovery[:] = [None, 0]
    return alerts, outliers


def usable_value(raw):
    if type(raw) not in (int, float):
        return None
    try:
        value = float(raw)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


thresholds_strategy = st.lists(
    st.builds(
        Threshold,
        field=st.sampled_from(["temp", "load"]),
        k=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
        window_count=st.integers(min_value=2, max_value=9),
        count=st.integers(min_value=1, max_value=3),
        mad_floor=st.sampled_from([0.0, 0.0, 0.0, 0.5, 3.0]),  # issue 16's MAD floor
    )
    | st.builds(
        Threshold,
        field=st.sampled_from(["temp", "load"]),
        k=st.sampled_from([1.0, 2.0, 3.0]),
        window_count=st.integers(min_value=2, max_value=9),
        duration_ns=st.sampled_from([0, 10 * S, 25 * S]),
        mad_floor_pct=st.sampled_from([0.0, 0.0, 50.0]),
    ),
    min_size=1,
    max_size=4,
    unique=True,
)
# Mostly calm floats, so alerts also recover and whole runs take the all-floats path; now and
# then an int (same value as a float), a spike, or something that cannot enter a window.
calm = st.integers(min_value=0, max_value=4).map(float)
cell_values = st.one_of(
    *[calm] * 20,
    st.sampled_from([100.0, -100.0, 7.5]),
    st.floats(min_value=-10, max_value=10, allow_nan=False),
    st.integers(min_value=-4, max_value=4),
    st.sampled_from([None, "hot", True, math.nan, math.inf, 10**400, 1e300]),
)


@st.composite
def batches(draw):
    """A few batches of rows over a few series (some without the region tag), shuffled."""
    hosts = ["a", "b"]
    regions = ["eu", None]
    result = []
    clock = 0
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        rows = []
        for _ in range(draw(st.integers(min_value=0, max_value=60))):
            clock += draw(st.integers(min_value=0, max_value=10))
            row = {"host": draw(st.sampled_from(hosts)), "time": clock * S}
            region = draw(st.sampled_from(regions))
            if region is not None:
                row["region"] = region
            for field in ("temp", "load"):
                value = draw(cell_values)
                if value is not None:
                    row[field] = value
            rows.append(row)
        result.append(draw(st.permutations(rows)))
    return result


#: The detector's ways to a verdict: numpy's SeriesBlock (with and without the plain-Python path
#: for a handful of rows, _FEW), RollingMAD windows that compact between batches (numpy there,
#: windows above the block size), those windows judging a batch at once (WindowRuns, compacted
#: or keeping their sorted half), and pure Python (no numpy, or MADCHECK_PURE_PYTHON=1).
PATHS = {
    "numpy": {"vectorize": True},
    "numpy, no small-batch path": {"vectorize": True, "_FEW": 0},
    "numpy, compacting windows": {"vectorize": True, "BLOCK_MAX_WINDOW": 4},
    "numpy, whole-batch windows": {
        "vectorize": True,
        "BLOCK_MAX_WINDOW": 1,
        "RUN_MIN": 1,
        "_RUN_SHARE": 1,
    },
    "numpy, whole-batch windows with their sorted half": {
        "vectorize": True,
        "BLOCK_MAX_WINDOW": 1,
        "COMPACT_MAX_WINDOW": 1,
        "RUN_MIN": 1,
        "_RUN_SHARE": 1,
    },
    "pure Python": {"vectorize": False},
}


@pytest.mark.parametrize("path", list(PATHS))
@settings(max_examples=100, deadline=None)
@given(
    thresholds=thresholds_strategy,
    state_change_count=st.sampled_from([0, 2, 3]),
    recovery_count=st.sampled_from([0, 1, 2, 4]),
    batch_list=batches(),
)
def test_detector_alerts_match_a_plain_implementation(
    path, thresholds, state_change_count, recovery_count, batch_list
):
    settings_of_path = dict(PATHS[path])
    vectorize = settings_of_path.pop("vectorize")
    if vectorize and vectorized.numpy is None:
        pytest.skip("numpy is not installed")
    tag_names = ["host", "region"]
    with patch.multiple(detector_module, **settings_of_path) if settings_of_path else nullcontext():
        detector = Detector("cpu", thresholds, state_change_count, recovery_count, vectorize)
        check_against_plain(
            detector, tag_names, thresholds, state_change_count, recovery_count, batch_list
        )


@st.composite
def long_batches(draw):
    """Batches of many float rows over two series (in some batches now and then an int or a
    missing value), so that each series often brings its window of 6 to 24 values up to its
    size in one batch: the detector's whole-batch path (``WindowRuns``)."""
    result = []
    clock = 0
    floats = st.one_of(
        *[calm] * 30,
        st.sampled_from([100.0, -100.0, 7.5]),
        st.floats(min_value=-10, max_value=10, allow_nan=False),
    )
    for _ in range(draw(st.integers(min_value=2, max_value=8))):
        rows = []
        value = floats if draw(st.booleans()) else st.one_of(floats, st.sampled_from([3, None]))
        for _ in range(draw(st.integers(min_value=17, max_value=40))):
            clock += draw(st.integers(min_value=0, max_value=3))
            row = {"host": draw(st.sampled_from(["a", "b"])), "time": clock * S}
            raw = draw(value)
            if raw is not None:
                row["temp"] = raw
            rows.append(row)
        result.append(rows)
    return result


@needs_numpy
@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("hand_back", [False, True])
@settings(max_examples=100, deadline=None)
@given(
    thresholds=st.lists(
        st.builds(
            Threshold,
            field=st.just("temp"),
            k=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
            window_count=st.integers(min_value=6, max_value=24),
            count=st.integers(min_value=1, max_value=4),
        )
        | st.builds(
            Threshold,
            field=st.just("temp"),
            k=st.sampled_from([1.0, 2.0, 3.0]),
            window_count=st.integers(min_value=6, max_value=24),
            duration_ns=st.sampled_from([0, 10 * S]),
        ),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    state_change_count=st.sampled_from([0, 2, 3]),
    recovery_count=st.sampled_from([0, 1, 3]),
    batch_list=long_batches(),
)
def test_whole_batch_windows_match_a_plain_implementation(
    compact, hand_back, thresholds, state_change_count, recovery_count, batch_list
):
    """The detector with every window judged by ``WindowRuns`` once full (any share of the
    window, from one value on): alerts, their median and MAD, and outlier counts as defined.
    ``hand_back``: every window with a value left for the definition is handed back to
    ``RollingMAD.advance`` for that batch."""
    settings_of_path = {"BLOCK_MAX_WINDOW": 1, "RUN_MIN": 1, "_RUN_SHARE": 1}
    if not compact:
        settings_of_path["COMPACT_MAX_WINDOW"] = 1
    handing_back = (
        patch.multiple(vectorized, _HAND_BACK_OVER=0, _HAND_BACK_SHARE=10**9)
        if hand_back
        else nullcontext()
    )
    with patch.multiple(detector_module, **settings_of_path), handing_back:
        detector = Detector("cpu", thresholds, state_change_count, recovery_count, True)
        check_against_plain(
            detector, ["host"], thresholds, state_change_count, recovery_count, batch_list
        )


def check_against_plain(
    detector, tag_names, thresholds, state_change_count, recovery_count, batch_list
):
    fast_alerts = []
    fast_outliers: Counter[str] = Counter()
    # The plain detector sees every batch at once; it sorts by time only within a batch, so
    # give it the batches one after another as the fast one gets them.
    plain_alerts = []
    plain_outliers: Counter[str] = Counter()
    history: list[dict] = []
    for rows in batch_list:
        result = detector.process(rows, tag_names)
        fast_alerts += [
            (
                a.field,
                a.tags,
                a.threshold,
                a.value,
                a.median,
                a.mad,
                a.time_ns,
                a.transitions,
                a.suppressed,
                a.started_ns,
            )
            for a in result.alerts
        ]
        fast_outliers.update(result.outliers)
        history += sorted(rows, key=lambda r: r["time"])
    plain_alerts, plain_outliers = plain_detector(
        history, tag_names, thresholds, state_change_count, recovery_count
    )
    assert fast_alerts == plain_alerts
    assert +fast_outliers == +plain_outliers


@st.composite
def one_row_calls(draw):
    """Mostly calls with one row (the one-row path: ``SeriesBlock.judge_one``), now and then a
    flush of many rows in between (the batch paths), on the same windows: a stream of a few
    series, with the same mix of calm values, spikes, ints and unusable values as ``batches``."""
    result = []
    clock = 0
    for _ in range(draw(st.integers(min_value=1, max_value=60))):
        size = draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 3, 20]))
        rows = []
        for _ in range(size):
            clock += draw(st.integers(min_value=0, max_value=10))
            row = {"host": draw(st.sampled_from(["a", "b"])), "time": clock * S}
            if draw(st.booleans()):
                row["region"] = "eu"
            for field in ("temp", "load"):
                value = draw(cell_values)
                if value is not None:
                    row[field] = value
            rows.append(row)
        result.append(rows)
    return result


@pytest.mark.parametrize("path", ["numpy", "pure Python"])
@settings(max_examples=150, deadline=None)
@given(
    thresholds=thresholds_strategy,
    state_change_count=st.sampled_from([0, 2, 3]),
    recovery_count=st.sampled_from([0, 1, 2, 4]),
    batch_list=one_row_calls(),
)
def test_one_row_calls_between_flushes_match_a_plain_implementation(
    path, thresholds, state_change_count, recovery_count, batch_list
):
    """One-row calls interleaved with flushes: alerts (count and duration rules, flap
    suppression, recovery, MAD floors), their median and MAD, and outlier counts as defined;
    and every call passes over the same values, for the same reasons, as pure Python does."""
    vectorize = PATHS[path]["vectorize"]
    if vectorize and vectorized.numpy is None:
        pytest.skip("numpy is not installed")
    tag_names = ["host", "region"]
    detector = Detector("cpu", thresholds, state_change_count, recovery_count, vectorize)
    check_against_plain(
        detector, tag_names, thresholds, state_change_count, recovery_count, batch_list
    )
    fast = Detector("cpu", thresholds, state_change_count, recovery_count, vectorize)
    plain = Detector("cpu", thresholds, state_change_count, recovery_count, False)
    for rows in batch_list:
        assert fast.process(rows, tag_names).skipped == plain.process(rows, tag_names).skipped


def test_recovery_in_the_middle_of_a_run_of_floats_is_reported_where_it_completes():
    values = [1.0, 2.0, 1.0, 2.0, 1.0, 100.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    rows = [{"host": "a", "temp": v, "time": i * S} for i, v in enumerate(values)]
    detector = Detector("cpu", [Threshold("temp", 3.0, 5, count=1)], recovery_count=2)
    fired, resolved = detector.process(rows, ["host"]).alerts
    # window at t7: 1 2 1 100 1 2 -> last five 2 1 100 1 2: median 2, MAD 1
    assert (fired.time_ns, fired.started_ns) == (5 * S, None)
    assert (resolved.time_ns, resolved.started_ns, resolved.value) == (7 * S, 5 * S, 2.0)
    assert (resolved.median, resolved.mad) == (2.0, 1.0)


# -- memory ------------------------------------------------------------------------------------


def retained_per_value(series: int, size: int, vectorize: bool) -> float:
    """Bytes the detector keeps per value once ``series`` windows of ``size`` are full, by
    tracemalloc (the bench measures the whole trigger state: docs/performance.md)."""
    rng = random.Random(11)
    steps = max(1, 2_000 // series)  # rows of several timestamps per batch, as a flush has
    gc.collect()
    tracemalloc.start()
    try:
        detector = Detector("cpu", [Threshold("usage", 3.0, size, count=5)], vectorize=vectorize)
        for first in range(0, size, steps):
            rows = [
                {"host": f"host{s:04d}", "usage": rng.gauss(50.0, 5.0), "time": step * S}
                for step in range(first, first + steps)
                for s in range(series)
            ]
            detector.process(rows, ["host"])
        del rows
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert detector.series_count == series
    return retained / (series * size)


def test_at_most_24_bytes_per_retained_value_at_window_100_in_pure_python():
    assert retained_per_value(400, 100, vectorize=False) <= 24


@needs_numpy
def test_at_most_16_bytes_per_retained_value_with_numpy():
    """Window 100: one matrix row of 8-byte values per series; window 1,000: a RollingMAD that
    keeps only its ring between batches."""
    assert retained_per_value(400, 100, vectorize=True) <= 16
    assert retained_per_value(50, 1_000, vectorize=True) <= 16


class RecordingObserver:
    """A ``VerdictObserver`` that keeps every call, traced series being those of host ``a``."""

    def __init__(self) -> None:
        self.counts: Counter[tuple] = Counter()
        self.last_ns: dict[tuple, int] = {}
        self.outliers: list[tuple] = []
        self.values: list[tuple] = []

    def entered(self, series, field, cell, count, last_ns):
        window_count = cell.states[0].threshold.window_count
        self.counts[(series.tags(), field, window_count)] += count
        self.last_ns[(series.tags(), field, window_count)] = last_ns

    def outlier(self, series, field, cell, position, time_ns):
        self.outliers.append((series.tags(), field, cell.states[position].threshold, time_ns))

    def traces(self, series):
        return dict(series.tags()).get("host") == "a"

    def judged(self, series, field, cell, times, values, medians, mads):
        window_count = cell.states[0].threshold.window_count
        assert len(times) == len(values) == len(medians) == len(mads) > 0
        for judged in zip(times, values, medians, mads, strict=True):
            self.values.append((series.tags(), field, window_count, *judged))


def observed(path, thresholds, state_change_count, recovery_count, batch_list):
    settings_of_path = dict(PATHS[path])
    vectorize = settings_of_path.pop("vectorize")
    observer = RecordingObserver()
    outliers: Counter[str] = Counter()
    with patch.multiple(detector_module, **settings_of_path) if settings_of_path else nullcontext():
        detector = Detector("cpu", thresholds, state_change_count, recovery_count, vectorize)
        detector.observer = observer
        for rows in batch_list:
            outliers.update(detector.process(rows, ["host", "region"]).outliers)
    return observer, outliers


@needs_numpy
@pytest.mark.parametrize("path", [name for name in PATHS if name != "pure Python"])
@settings(max_examples=60, deadline=None)
@given(
    thresholds=thresholds_strategy,
    state_change_count=st.sampled_from([0, 2]),
    recovery_count=st.sampled_from([0, 2]),
    batch_list=batches(),
)
def test_every_path_reports_the_same_verdicts_to_an_observer(
    path, thresholds, state_change_count, recovery_count, batch_list
):
    """What ``madcheck replay`` counts and charts (``Detector.observer``) does not depend on
    the path the detector takes to its verdicts."""
    fast, fast_outliers = observed(path, thresholds, state_change_count, recovery_count, batch_list)
    plain, plain_outliers = observed(
        "pure Python", thresholds, state_change_count, recovery_count, batch_list
    )
    assert fast.counts == plain.counts
    assert fast.last_ns == plain.last_ns
    assert sorted(fast.outliers, key=repr) == sorted(plain.outliers, key=repr)
    assert sorted(fast.values, key=repr) == sorted(plain.values, key=repr)
    assert len(plain.outliers) == sum(plain_outliers.values()) == sum(fast_outliers.values())
