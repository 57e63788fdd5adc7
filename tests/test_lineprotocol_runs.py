"""The replay's fast line reader (runs of one shape parsed a column at a time, text read in
pieces) against the general parser alone: same rows, same errors, same line numbers, on any
lines and any cutting of the text into pieces."""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madcheck.engine import lineblocks
from madcheck.engine import lineprotocol as lp
from madcheck.engine.lineprotocol import (
    LineError,
    Point,
    RowRun,
    iter_lines,
    iter_row_blocks,
    iter_text_row_blocks,
    to_engine_row,
)

NOW = 1_764_446_400_000_000_000


def flattened(blocks: Iterable[list[Any]]) -> list[Any]:
    """Every parsed line as (line number, row) or its ``LineError``, whatever made it."""
    out: list[Any] = []
    for block in blocks:
        for item in block:
            if isinstance(item, RowRun):
                assert item.rows
                out += [(item.first_line + i, item.table, row) for i, row in enumerate(item.rows)]
            elif isinstance(item, tuple):
                table, tags, row, number = item
                assert all(row[key] == value for key, value in tags.items())
                out.append((number, table, row))
            elif isinstance(item, Point):
                out.append((item.line_number, item.measurement, to_engine_row(item)))
            else:
                assert isinstance(item, LineError)
                out.append(item)
    return out


def typed(items: list[Any]) -> list[Any]:
    """Rows compared with their value types and float signs (``1 == 1.0 == True``)."""
    out = []
    for item in items:
        if isinstance(item, tuple):
            number, table, row = item
            row = {
                key: (type(value), math.copysign(1, value) if type(value) is float else 0, value)
                for key, value in row.items()
            }
            item = (number, table, list(row), row)
        out.append(item)
    return out


def general(lines: list[str], precision: str) -> list[Any]:
    """The general parser alone (no fast path of any kind), line by line."""
    no_fast = lambda unit, as_row: lambda text, number: None  # noqa: E731
    original = lp._fast_parser
    lp._fast_parser = no_fast  # type: ignore[assignment]
    try:
        unit = lp.normalize_precision(precision)
        return flattened(lp._parsed_blocks(lp._line_lists(lines), unit, NOW, as_row=False))
    finally:
        lp._fast_parser = original


@pytest.fixture
def small_runs(monkeypatch):
    """Runs and blocks of a few lines, so short examples exercise every transition."""
    monkeypatch.setattr(lp, "MIN_RUN", 2)
    monkeypatch.setattr(lp, "MAX_RUN", 8)
    monkeypatch.setattr(lp, "LINES_PER_BLOCK", 3)


# -- lines: mostly one shape (so runs form), with every kind of trouble mixed in ---------------

_FLOATS = ["1", "-2.5", ".5", "1.", "1e3", "-2.5E-2", "6.02e+23", "0", "-0", "-0.0", "007.50"]
_BAD_FLOATS = [
    "+1",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "Infinity",
    "1_000",
    "\u0661",
    "1.2.3",
    "-",
    ".",
    "1e",
    "e5",
    "0x10",
    "1.5i",
    "",
    " 1",
    "1\t",
    "--1",
    "1-2",
    "1e+",
    "+.5",
]
_INTS = ["5i", "-5i", "0i", "-0i", "9223372036854775807i", "-9223372036854775808i"]
_BAD_INTS = ["9223372036854775808i", "+5i", "1_0i", "\u0661i", "i", "-i", "5.0i", "5ii"]
_UINTS = ["5u", "0u", "18446744073709551615u"]
_BAD_UINTS = ["-1u", "18446744073709551616u", "+1u", "u"]
_BOOLS = ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]
_BAD_BOOLS = ["yes", "tRUE", "0b"]
_STRINGS = ['"x"', '"a b,c=d"', '"q\\"q"', '"back\\\\"', '"open', '"line\nbreak"', '""']
_STAMPS = ["1700000000", "1700000000123", "1700000000123456", "1700000000123456789", "0", "5"]
_BAD_STAMPS = ["-5", "+5", "12:00", "99999999999999999999", "1e5", "\u0661", "1_0", "9300000000000"]

_KIND_VALUES = {"float": _FLOATS, "int": _INTS, "uint": _UINTS, "bool": _BOOLS}
_ODD_VALUES = _BAD_FLOATS + _BAD_INTS + _BAD_UINTS + _BAD_BOOLS + _STRINGS + _FLOATS + _INTS


@st.composite
def shapes(draw: st.DrawFn) -> tuple[str, list[str], list[tuple[str, str]]]:
    measurement = draw(st.sampled_from(["cpu", "cpu", "mem", "a=b", "m#"]))
    tags = draw(st.lists(st.sampled_from(["host", "dc", "k", "load"]), max_size=3, unique=True))
    names = draw(
        st.lists(
            st.sampled_from(["temp", "load", "n", "ok", "x"]), min_size=1, max_size=3, unique=True
        )
    )
    fields = [(name, draw(st.sampled_from(sorted(_KIND_VALUES)))) for name in names]
    return measurement, tags, fields


_TAG_VALUES = ["h1", "h2", "eu", "a=b", "a\x00b", "x\ty", "\u00e9t\u00e9", "#", "1", "2.5", "t"]


@st.composite
def shaped_line(draw: st.DrawFn, shape: tuple[str, list[str], list[tuple[str, str]]]) -> str:
    measurement, tags, fields = shape
    head = measurement + "".join(f",{key}={draw(st.sampled_from(_TAG_VALUES))}" for key in tags)
    body = ",".join(f"{name}={draw(st.sampled_from(_KIND_VALUES[kind]))}" for name, kind in fields)
    return f"{head} {body} {draw(st.sampled_from(_STAMPS))}"


@st.composite
def odd_line(draw: st.DrawFn, shape: tuple[str, list[str], list[tuple[str, str]]]) -> str:
    """A line of the shape with one thing changed, or something else altogether."""
    line = draw(shaped_line(shape))
    head, body, stamp = line.split(" ")
    change = draw(st.integers(0, 14))
    if change == 0:
        return ""
    if change == 1:
        return "# " + line
    if change == 2:
        return line + draw(st.sampled_from([" ", "\t", "  ", " \t"]))
    if change == 3:
        return draw(st.sampled_from([" ", "\t"])) + line
    if change == 4:
        return f"{head} {body}"  # no timestamp
    if change == 5:
        return f"{head} {body} {draw(st.sampled_from(_BAD_STAMPS))}"
    if change == 6:
        name = body.split("=")[0]
        return f"{head} {body},{name}={draw(st.sampled_from(_ODD_VALUES))} {stamp}"
    if change == 7:
        return f"{head},{draw(st.sampled_from(['host', 'time', 'temp', 'q']))}=v {body} {stamp}"
    if change == 8:
        return f"{head}  {body} {stamp}"
    if change == 9:
        pairs = body.split(",")
        name = pairs[0].split("=")[0]
        pairs[0] = f"{name}={draw(st.sampled_from(_ODD_VALUES))}"
        return f"{head} {','.join(pairs)} {stamp}"
    if change == 10:
        return line.replace(",", "\\,", 1).replace(" ", "\\ ", 1)
    if change == 11:
        return f"{head} {body},time=1 {stamp}"
    if change == 12:
        return draw(st.text(st.sampled_from(list('ab=, \\"\ti5.-#\r')), max_size=25))
    if change == 13:
        return f"{head.split(',')[0]},{head.partition(',')[2] or 'q=1'} {body} {stamp}"
    # a tag's name and a later field's swapped: each name still where the shape has one
    tags, pairs = head.split(",")[1:], body.split(",")
    if not tags or len(pairs) < 2:
        return line
    tag_name, tag_value = tags[-1].split("=", 1)
    field_name, field_value = pairs[-1].split("=", 1)
    tags[-1], pairs[-1] = f"{field_name}={tag_value}", f"{tag_name}={field_value}"
    return f"{','.join([head.split(',')[0], *tags])} {','.join(pairs)} {stamp}"


@st.composite
def documents(draw: st.DrawFn) -> list[str]:
    shape = draw(shapes())
    other = draw(shapes())
    lines = []
    for _ in range(draw(st.integers(0, 40))):
        pick = draw(st.integers(0, 9))
        if pick < 7:
            lines.append(draw(shaped_line(shape)))
        elif pick == 7:
            lines.append(draw(shaped_line(other)))
        else:
            lines.append(draw(odd_line(shape)))
    return lines


def pieces(text: str, cuts: list[int]) -> Iterator[str]:
    at = 0
    for cut in sorted(cuts):
        cut = min(cut, len(text))
        yield text[at:cut]
        at = cut
    yield text[at:]


_PRECISIONS = st.sampled_from(["auto", "s", "ms", "us", "ns"])


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    documents(),
    _PRECISIONS,
    st.lists(st.integers(0, 2000), max_size=8),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_text_pieces_parse_as_the_general_parser_reads_the_lines(
    small_runs, lines, precision, cuts, line_end, final_line_end
):
    text = line_end.join(lines) + (line_end if final_line_end and lines else "")
    expected = general(text.split("\n"), precision)
    got = flattened(iter_text_row_blocks(pieces(text, cuts), precision, default_time_ns=NOW))
    assert typed(got) == typed(expected)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents(), _PRECISIONS)
def test_row_blocks_and_points_of_lines_agree_with_the_general_parser(small_runs, lines, precision):
    expected = typed(general(lines, precision))
    assert typed(flattened(iter_row_blocks(lines, precision, default_time_ns=NOW))) == expected
    points = [[item] for item in iter_lines(lines, precision, default_time_ns=NOW)]
    assert typed(flattened(points)) == expected


def test_names_in_each_others_places_are_not_taken_for_the_shape(small_runs):
    """Every fixed text of the shape is in the odd line, only not where the shape has it."""
    shaped = [f"cpu,host=h,dc=eu temp=1,load=2 {i}" for i in range(1, 9)]
    lines = [*shaped[:4], "cpu,host=h,load=eu temp=1,dc=2 5", *shaped[4:]]
    got = flattened(iter_text_row_blocks(["\n".join(lines)], "s", default_time_ns=NOW))
    assert got[4][2] == {"host": "h", "load": "eu", "temp": 1.0, "dc": 2.0, "time": 5 * 10**9}
    assert typed(got) == typed(general(lines, "s"))


def test_a_long_file_of_one_shape_comes_as_runs_with_the_rows_of_the_general_parser():
    lines = [
        f"cpu,host=h{i % 50:03d},dc=eu temp={i % 97}.125,n={i}i,ok={'tf'[i % 2]},u={i}u "
        f"{1_700_000_000 + i // 50 * 10}"
        for i in range(20_000)
    ]
    lines[7_000] = "cpu,host=h001 temp=nan 1700000000"  # one odd line amid the runs
    blocks = list(iter_text_row_blocks(["\n".join(lines)], "auto", default_time_ns=NOW))
    runs = [item for block in blocks for item in block if isinstance(item, RowRun)]
    assert sum(len(run.rows) for run in runs) > 19_000
    assert typed(flattened(blocks)) == typed(general(lines, "auto"))


# -- a column at a time: each conversion against the general parser's one value --------------

_TOKEN_CHARS = st.sampled_from(list("0123456789-+.eEinfaINFtTrRuUlsS_ \t,\u0661x"))


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.text(_TOKEN_CHARS, max_size=8), min_size=1, max_size=4),
    st.sampled_from(["float", "int", "uint", "bool"]),
)
def test_a_converted_column_holds_what_the_general_parser_reads_or_is_refused(tokens, kind):
    suffix = {"int": "i", "uint": "u"}.get(kind, "")
    expected = [lp._unquoted_value(token + suffix) if token + suffix else None for token in tokens]
    want = {"float": float, "int": int, "uint": lp.UInt64, "bool": bool}[kind]
    converted = lineblocks._converted(tokens, kind)
    if any(value is None or type(value) is not want for value in expected):
        assert converted is None
    elif converted is not None:
        assert [(type(v), v) for v in converted] == [(type(v), v) for v in map(_plain, expected)]
        for value, original in zip(converted, expected, strict=True):
            if isinstance(value, float):
                assert math.copysign(1, value) == math.copysign(1, original)


def _plain(value: Any) -> Any:
    return int(value) if type(value) is lp.UInt64 else value


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(_TOKEN_CHARS, max_size=21), min_size=1, max_size=4), _PRECISIONS)
def test_converted_timestamps_are_what_the_general_parser_makes_or_refused(tokens, precision):
    unit = lp.normalize_precision(precision)
    expected = []
    for token in tokens:
        try:
            expected.append(lp._Scanner(f"m v=1 {token}").parse(unit, NOW).time_ns)
        except (lp.LineProtocolError, lp._Incomplete):
            expected.append(None)
    converted = lineblocks._times(tokens * 5, unit)  # repeated: the shared-times path too
    if None in expected or any(token.strip(" \t") != token or not token for token in tokens):
        assert converted is None
    elif converted is not None:
        assert converted == expected * 5


# -- hostile input: bounded memory, no quadratic time -----------------------------------------


def test_a_line_without_end_is_reported_without_holding_it(monkeypatch):
    monkeypatch.setattr(lp, "MAX_LINE_CHARS", 100_000)
    piece = "x" * 65_536

    def endless_line() -> Iterator[str]:
        yield "cpu v=1 1\n"
        for _ in range(100):  # 6.5 MB, one line
            yield piece
        yield "\ncpu v=2 2\n"

    tracemalloc.start()
    try:
        got = flattened(iter_text_row_blocks(endless_line(), "s", default_time_ns=NOW))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # the line is 6.5 MB
    assert [type(item) for item in got] == [tuple, LineError, tuple]
    error = got[1]
    assert error.line_number == 2 and "longer than" in error.error_message
    assert len(error.original_line) < 300
    assert got[2][0] == 3


def test_a_long_line_under_the_limit_still_parses(monkeypatch):
    monkeypatch.setattr(lp, "MAX_LINE_CHARS", 100_000)
    line = "cpu " + ",".join(f"f{i}=1" for i in range(10_000)) + " 1"
    got = flattened(iter_text_row_blocks([line[:500], line[500:]], "s", default_time_ns=NOW))
    assert len(got) == 1 and len(got[0][2]) == 10_001


def test_an_unterminated_quote_running_through_a_file_of_runs(small_runs):
    lines = ['log s="never closed 1'] + [f"cpu,host=a temp={i} {i + 1}" for i in range(3000)]
    got = flattened(iter_text_row_blocks(["\n".join(lines)], "s", default_time_ns=NOW))
    assert isinstance(got[0], LineError) and got[0].line_number == 1
    assert [item[0] for item in got[1:]] == list(range(2, 3002))


#: Text that made a reader re-scan what it had read: each unit repeated. ``wide lines`` would
#: cost a pass over the run per column if runs were tried on them.
HOSTILE_TEXTS = {
    "wide lines": "cpu " + ",".join(f"f{i}=1" for i in range(500)) + " 1\n",
    "one line, no end": "cpu v=" + "1" * 100,
    "unterminated strings": 'm f="abc\n',
    "one shape": "cpu,host=a temp=1.5,load=2 1700000000\n",
}


def _cpu_per_byte(text: str) -> float:
    """The least CPU time per byte of three reads (the least is the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in iter_text_row_blocks(pieces(text, list(range(0, len(text), 4096))), "s"):
            pass
        best = min(best, time.process_time() - started)
    return max(best, 1e-6) / len(text)


@pytest.mark.parametrize("shape", sorted(HOSTILE_TEXTS))
def test_reading_time_per_byte_stays_flat_as_hostile_text_grows(shape):
    """16 times the text must not cost 16 times as much per byte; the bound is generous (4x)
    so a busy machine cannot fail it, and no absolute time is assumed."""
    unit = HOSTILE_TEXTS[shape]
    small, large = (_cpu_per_byte(unit * (size // len(unit))) for size in (40_000, 640_000))
    assert large < 4 * small, f"{shape}: {large / small:.1f}x the time per byte at 16x the size"


def test_wide_lines_are_read_line_by_line_with_the_same_rows(small_runs):
    lines = ["cpu " + ",".join(f"f{i}={i}" for i in range(100)) + f" {n}" for n in range(1, 20)]
    blocks = list(iter_text_row_blocks(["\n".join(lines)], "s", default_time_ns=NOW))
    assert not any(isinstance(item, RowRun) for block in blocks for item in block)
    assert typed(flattened(blocks)) == typed(general(lines, "s"))
