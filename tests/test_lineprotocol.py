"""Line protocol parsing: what a user writing lines sees accepted, typed and rejected."""

from __future__ import annotations

import io
import itertools
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madcheck.engine import lineprotocol as lp
from madcheck.engine.line_builder import LineBuilder
from madcheck.engine.lineprotocol import (
    LineError,
    LineProtocolError,
    Point,
    UInt64,
    iter_lines,
    normalize_precision,
    parse_line,
    parse_lines,
    to_engine_row,
)

NOW = 1_764_446_400_000_000_000  # 2025-11-29T20:00:00Z


def one(line: str, precision: str = "auto") -> Point:
    return parse_line(line, precision, default_time_ns=NOW)


def results(body: str, precision: str = "auto") -> list[Point | LineError]:
    return list(parse_lines(body, precision, default_time_ns=NOW))


# -- structure and escapes -------------------------------------------------------------------------


def test_full_line_with_tags_fields_and_timestamp():
    point = one("cpu,host=a,region=eu usage=0.5,count=3i 1764446400")
    assert point == Point("cpu", {"host": "a", "region": "eu"}, {"usage": 0.5, "count": 3}, NOW)


def test_escaped_measurement_tag_and_field_keys():
    point = one(r"my\ cpu\,x,ta\,g\ k\=y=v\=1\ z f\=k\ 1=1")
    assert point.measurement == "my cpu,x"
    assert point.tags == {"ta,g k=y": "v=1 z"}
    assert point.fields == {"f=k 1": 1.0}


def test_equals_sign_in_measurement_needs_no_escape():
    assert one("a=b v=1").measurement == "a=b"


def test_backslash_before_an_ordinary_character_is_kept():
    point = one(r"dir\x,path=C:\temp v=1")
    assert point.measurement == r"dir\x"
    assert point.tags == {"path": r"C:\temp"}


def test_double_backslash_is_one_backslash():
    assert one(r"a\\b v=1").measurement == "a\\b"


def test_string_field_with_escaped_quotes_backslashes_commas_and_spaces():
    point = one(r'log msg="he said \"hi, there\" \\o/",n=1i')
    assert point.fields == {"msg": 'he said "hi, there" \\o/', "n": 1}


def test_string_field_backslash_before_other_character_is_literal():
    assert one(r'log msg="a\nb"').fields["msg"] == "a\\nb"


def test_quoted_newline_continues_the_string_on_the_next_physical_line():
    body = 'log msg="first\nsecond",n=2i 1764446400\ncpu v=1 1764446400'
    parsed = results(body)
    assert [type(p) for p in parsed] == [Point, Point]
    assert parsed[0].fields == {"msg": "first\nsecond", "n": 2}
    assert parsed[1].measurement == "cpu"


def test_unterminated_string_is_an_error_on_its_line_and_later_lines_still_parse():
    parsed = results('log msg="never closed\ncpu v=1\ncpu v=2')
    assert isinstance(parsed[0], LineError)
    assert parsed[0].line_number == 1
    assert "unterminated string" in parsed[0].error_message
    assert [p.fields["v"] for p in parsed[1:] if isinstance(p, Point)] == [1.0, 2.0]


def test_surrounding_and_repeated_spaces_and_crlf_are_tolerated():
    parsed = results("  cpu,host=a   v=1   1764446400  \r\nmem v=2\r\n")
    assert [p.measurement for p in parsed if isinstance(p, Point)] == ["cpu", "mem"]
    assert parsed[0].time_ns == NOW


# -- field types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("-1.5", -1.5),
        ("1.", 1.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("-2.5E-2", -0.025),
        ("6.02e+23", 6.02e23),
    ],
)
def test_floats(text, expected):
    value = one(f"m v={text}").fields["v"]
    assert type(value) is float
    assert value == expected


@pytest.mark.parametrize("text", ["t", "T", "true", "True", "TRUE"])
def test_true_spellings(text):
    assert one(f"m v={text}").fields["v"] is True


@pytest.mark.parametrize("text", ["f", "F", "false", "False", "FALSE"])
def test_false_spellings(text):
    assert one(f"m v={text}").fields["v"] is False


def test_integer_and_unsigned_suffixes_keep_their_kind():
    fields = one("m i=-42i,u=42u,big=18446744073709551615u,max=9223372036854775807i").fields
    assert fields["i"] == -42 and type(fields["i"]) is int
    assert fields["u"] == 42 and isinstance(fields["u"], UInt64)
    assert fields["big"] == 2**64 - 1
    assert fields["max"] == 2**63 - 1


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("m v=9223372036854775808i", ["integer", "out of range"]),
        ("m v=18446744073709551616u", ["unsigned", "out of range"]),
        ("m v=-1u", ["unsigned", "out of range 0.."]),
        ("m v=nan", ["invalid value", "'nan'"]),
        ("m v=inf", ["invalid value"]),
        ("m v=+1", ["invalid value"]),
        ("m v=1_000", ["invalid value"]),
        ("m v=yes", ["invalid value", "boolean"]),
        ("m v=1.5i", ["invalid value"]),
    ],
)
def test_invalid_values_are_explained(line, words):
    with pytest.raises(LineProtocolError) as caught:
        one(line)
    for word in words:
        assert word in str(caught.value)
    assert "'v'" in str(caught.value)


def test_a_repeated_field_key_keeps_the_last_value():
    assert one("m v=1,v=2i").fields == {"v": 2}


# -- structural errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("cpu", "missing fields"),
        ("cpu,host=a", "missing fields"),
        (",host=a v=1", "missing measurement"),
        ("cpu,host= v=1", "tag 'host' has an empty value"),
        ("cpu,host v=1", "tag 'host' has no value"),
        ("cpu,=a v=1", "empty tag key"),
        ("cpu,a=1,a=2 v=1", "tag 'a' appears more than once"),
        ("cpu v", "field 'v' has no value"),
        ("cpu v=", "field 'v' has no value"),
        ("cpu v=1,", "empty field key"),
        ("cpu v=1 12:00", "invalid timestamp '12:00'"),
        ("cpu v=1 1 2", "unexpected text after the timestamp"),
        ('cpu v="a"b', "unexpected 'b' after the fields"),
        ("cpu time=1", "'time' cannot be used"),
        ("cpu,time=x v=1", "'time' cannot be used"),
        ("cpu,a=x a=1", "'a' is used as both a tag and a field"),
        ("cpu v=1 99999999999999999999", "outside the range"),
    ],
)
def test_structural_errors_have_clear_messages(line, fragment):
    with pytest.raises(LineProtocolError, match=None) as caught:
        one(line)
    assert fragment in str(caught.value)


def test_errors_carry_physical_line_numbers_and_the_original_text():
    body = "# header comment\ncpu v=1\n\ncpu v=oops\ncpu v=2\ncpu,host= v=3\n"
    parsed = results(body)
    errors = [p for p in parsed if isinstance(p, LineError)]
    assert [(e.line_number, e.original_line) for e in errors] == [
        (4, "cpu v=oops"),
        (6, "cpu,host= v=3"),
    ]
    assert [p.line_number for p in parsed if isinstance(p, Point)] == [2, 5]


def test_comments_and_blank_lines_produce_nothing():
    assert results("# only a comment\n   \n\t# indented comment\n") == []


# -- timestamps and precision ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "stamp", "expected_ns"),
    [
        ("s", "1764446400", NOW),
        ("ms", "1764446400000", NOW),
        ("us", "1764446400000000", NOW),
        ("ns", "1764446400000000000", NOW),
        ("second", "1", 10**9),
        ("millisecond", "1", 10**6),
        ("microsecond", "1", 10**3),
        ("nanosecond", "1", 1),
        ("s", "-1", -(10**9)),
    ],
)
def test_explicit_precision(precision, stamp, expected_ns):
    assert one(f"m v=1 {stamp}", precision).time_ns == expected_ns


@pytest.mark.parametrize(
    ("stamp", "expected_ns"),
    [
        ("1764446400", NOW),  # seconds
        ("4999999999", 4_999_999_999 * 10**9),  # still seconds
        ("5000000000", 5_000_000_000 * 10**6),  # from 5e9: milliseconds
        ("1764446400123", NOW + 123_000_000),
        ("1764446400123456", NOW + 123_456_000),  # microseconds
        ("1764446400123456789", NOW + 123_456_789),  # nanoseconds
    ],
)
def test_auto_precision_guesses_from_magnitude(stamp, expected_ns):
    assert one(f"m v=1 {stamp}").time_ns == expected_ns


def test_timestamp_overflowing_int64_ns_is_an_error():
    with pytest.raises(LineProtocolError, match="outside the range"):
        one("m v=1 9300000000000", "s")


def test_unknown_precision_is_rejected_with_the_accepted_names():
    with pytest.raises(ValueError, match="use auto, s, ms, us or ns"):
        normalize_precision("minutes")


def test_missing_timestamp_uses_the_default_time_for_every_line():
    parsed = results("a v=1\nb v=2")
    assert [p.time_ns for p in parsed if isinstance(p, Point)] == [NOW, NOW]


def test_missing_timestamp_without_default_means_now():
    before = time.time_ns()
    point = parse_line("m v=1")
    assert before <= point.time_ns <= time.time_ns()


# -- streaming and the engine row shape ------------------------------------------------------------


def test_iter_lines_reads_a_text_stream():
    stream = io.StringIO("cpu v=1 1764446400\n# comment\ncpu v=oops\ncpu v=3 1764446400\n")
    parsed = list(iter_lines(stream, "s"))
    assert [type(p) for p in parsed] == [Point, LineError, Point]
    assert parsed[1].line_number == 3


def test_iter_lines_is_lazy_on_an_endless_stream():
    endless = (f"cpu v={i} {i + 1}" for i in itertools.count())
    first = list(itertools.islice(iter_lines(endless, "s"), 3))
    assert [p.fields["v"] for p in first if isinstance(p, Point)] == [0.0, 1.0, 2.0]


def test_engine_row_has_only_present_columns_and_plain_ints():
    point = one('cpu,host=a usage=0.5,n=3u,ok=t,msg="x" 1764446400')
    row = to_engine_row(point)
    assert row == {"host": "a", "usage": 0.5, "n": 3, "ok": True, "msg": "x", "time": NOW}
    assert type(row["n"]) is int
    assert "region" not in row


# -- properties ------------------------------------------------------------------------------------

# LineBuilder (like the engine's) escapes neither backslashes nor tabs, and a leading '#' would
# make a comment: names are drawn without them.
_name_chars = st.characters(
    blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\\#\t\r\n\x0b\x0c"
)
_names = st.text(_name_chars, min_size=1, max_size=12)
# InfluxDB 3's LineBuilder refuses a space in a measurement and a space, ',' or '=' in a key
_measurements = _names.filter(lambda name: " " not in name)
_keys = _names.filter(lambda name: not set(name) & set(" ,="))
_field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=lp.INT64_MIN, max_value=lp.INT64_MAX),
    st.integers(min_value=0, max_value=lp.UINT64_MAX).map(UInt64),
    st.booleans(),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=20),
)


@st.composite
def _points(draw: st.DrawFn) -> Point:
    measurement = draw(_measurements)
    keys = draw(st.lists(_keys.filter(lambda k: k != "time"), min_size=1, max_size=6, unique=True))
    split = draw(st.integers(min_value=0, max_value=len(keys) - 1))
    tags = {key: draw(_names) for key in keys[:split]}
    fields = {key: draw(_field_values) for key in keys[split:]}
    stamp = draw(st.integers(min_value=-(2**62), max_value=2**62))
    return Point(measurement, tags, fields, stamp)


def _build(point: Point) -> str:
    builder = LineBuilder(point.measurement)
    for key, value in point.tags.items():
        builder.tag(key, value)
    for key, value in point.fields.items():
        if isinstance(value, bool):
            builder.bool_field(key, value)
        elif isinstance(value, UInt64):
            builder.uint64_field(key, value)
        elif isinstance(value, int):
            builder.int64_field(key, value)
        elif isinstance(value, float):
            builder.float64_field(key, value)
        else:
            builder.string_field(key, value)
    return builder.time_ns(point.time_ns).build()


@settings(max_examples=300, deadline=None)
@given(st.lists(_points(), min_size=1, max_size=5))
def test_linebuilder_output_parses_back_to_the_same_points(points):
    body = "\n".join(_build(p) for p in points)
    parsed = list(parse_lines(body, "ns", default_time_ns=0))
    assert parsed == points
    for original, back in zip(points, parsed, strict=True):
        for key, value in original.fields.items():
            assert type(back.fields[key]) is type(value)
            # InfluxDB 3's builder writes a whole float as int(value) + ".0": -0.0 becomes 0.0
            if isinstance(value, float) and math.copysign(1, value) < 0 and value != 0:
                assert math.copysign(1, back.fields[key]) < 0


_fuzz_chars = st.sampled_from(list('ab=, \\"it.5-0e#'))


def _outcome(parse):
    try:
        return parse()
    except LineProtocolError as error:
        return str(error)
    except lp._Incomplete:
        return "incomplete"


@settings(max_examples=500, deadline=None)
@given(st.text(_fuzz_chars, min_size=1, max_size=30))
def test_fast_path_never_disagrees_with_the_scanner(text):
    stripped = text.strip(" \t")
    assert _outcome(lambda: lp._parse(text, "ns", NOW, 1)) == _outcome(
        lambda: lp._Scanner(stripped).parse("ns", NOW)
    )


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list('ab=, \\"\n#it1.')), max_size=60))
def test_any_input_yields_points_or_line_errors_never_an_exception(body):
    for item in parse_lines(body, default_time_ns=NOW):
        assert isinstance(item, Point | LineError)


# -- linear time on hostile bodies -------------------------------------------------------------

#: Bodies that made the parser re-join and re-scan lines (issue 14): after an opening line,
#: a unit line repeated. The last two took 4 times as long per byte at 4 times the size.
HOSTILE_UNITS = {
    "unterminated strings": 'm f="abc\n',
    "no quote after an open string": "xxxxxxxxx\n",
    "one long line": 'm f="' + "x" * 50,
    "strings closing and reopening": "a" * 100 + '",b="c\n',
    "escaped quotes only": 'x\\"' * 30 + "\n",
}


def _cpu_per_byte(body: str) -> float:
    """The least CPU time per byte of three parses (the least is the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in parse_lines(body):
            pass
        best = min(best, time.process_time() - started)
    return max(best, 1e-6) / len(body)


@pytest.mark.parametrize("shape", sorted(HOSTILE_UNITS))
def test_parsing_time_per_byte_stays_flat_as_hostile_bodies_grow(shape):
    """16 times the body must not cost 16 times as much per byte (quadratic); the bound is
    generous (4x) so a busy machine cannot fail it, and no absolute time is assumed."""
    unit = HOSTILE_UNITS[shape]
    opener = 'm f="x\n' if shape.startswith(("strings", "no quote", "escaped")) else ""

    def body(size: int) -> str:
        return opener + unit * (size // len(unit))

    small, large = _cpu_per_byte(body(20_000)), _cpu_per_byte(body(320_000))
    assert large < 4 * small, f"{shape}: {large / small:.1f}x the time per byte at 16x the size"


def test_an_unterminated_string_reports_its_line_and_swallows_only_closed_strings():
    body = 'log msg="open\nstill open",x="again\ncpu v=1 1\ncpu v=2 2'
    parsed = list(parse_lines(body, default_time_ns=NOW))
    assert isinstance(parsed[0], LineError) and parsed[0].line_number == 1
    assert "unterminated string" in parsed[0].error_message
    # lines after the last closing quote are read again as lines of their own
    assert [p.fields["v"] for p in parsed[1:] if isinstance(p, Point)] == [1.0, 2.0]


def test_iter_row_blocks_gives_the_engine_rows_iter_lines_gives(monkeypatch):
    """The replay's row reader accepts, rejects and numbers every line as ``iter_lines`` does,
    also when a string running over several lines crosses a block's end."""
    from madcheck.engine import lineprotocol
    from madcheck.engine.lineprotocol import iter_row_blocks, to_engine_row

    monkeypatch.setattr(lineprotocol, "LINES_PER_BLOCK", 4)

    lines = [
        "cpu,host=a temp=1.5,load=2 10",
        'cpu,host=a temp=-.5,n=3i,u=7u,ok=t,s="x y" 11',
        "cpu,host=a host=1 12",  # a field named like a tag
        "cpu,host=a temp=1,temp=2 13",  # a field twice: the last one counts
        "cpu,host=a time=1 14",
        "cpu,host=b temp=nan 15",
        "cpu,host=b temp=1e3 16",
        "",
        "# a comment",
        "cpu,host=b temp=\u0661 17",  # a digit, but not an ASCII one
        r"cpu,host=a\ b temp=1 18",
        'cpu,host=a s="open',
        'still" 19',
        "cpu temp=1",
        "cpu,host=a temp=1 99999999999999999999",
    ]
    expected = [
        item if isinstance(item, LineError) else (to_engine_row(item), item.line_number)
        for item in iter_lines(lines, "s", default_time_ns=7)
    ]
    got = [
        (item[2], item[3])
        if isinstance(item, tuple)
        else item
        if isinstance(item, LineError)
        else (to_engine_row(item), item.line_number)
        for block in iter_row_blocks(lines, "s", default_time_ns=7)
        for item in block
    ]
    assert got == expected
    assert sum(isinstance(item, LineError) for item in got) >= 3
