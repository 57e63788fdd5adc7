"""The local ``LineBuilder`` raises exactly where InfluxDB 3's raises, and builds the same text.

The rules are read from ``influxdb3_py_api/src/line_builder/line_builder.py``; a plugin that builds
a line here that the real builder refuses would fail only in production.
"""

from __future__ import annotations

import math

import pytest

from madcheck.engine.line_builder import (
    InfluxDBError,
    InvalidKeyError,
    InvalidLineError,
    InvalidMeasurementError,
    LineBuilder,
)
from madcheck.engine.lineprotocol import LineProtocolError, parse_line


@pytest.mark.parametrize("key", ["", "a b", "a,b", "a=b", " ", ",", "="])
@pytest.mark.parametrize("kind", ["tag", "int64", "uint64", "float64", "string", "bool"])
def test_keys_with_a_space_comma_or_equals_or_empty_raise(kind: str, key: str) -> None:
    builder = LineBuilder("m")
    add = {
        "tag": lambda: builder.tag(key, "v"),
        "int64": lambda: builder.int64_field(key, 1),
        "uint64": lambda: builder.uint64_field(key, 1),
        "float64": lambda: builder.float64_field(key, 1.5),
        "string": lambda: builder.string_field(key, "s"),
        "bool": lambda: builder.bool_field(key, True),
    }[kind]
    with pytest.raises(InvalidKeyError):
        add()


def test_a_measurement_with_a_space_raises_and_one_with_a_comma_is_escaped() -> None:
    with pytest.raises(InvalidMeasurementError, match="cannot contain spaces"):
        LineBuilder("my table")
    assert LineBuilder("a,b").int64_field("v", 1).build() == "a\\,b v=1i"


def test_a_line_without_a_field_raises_at_build() -> None:
    builder = LineBuilder("m").tag("host", "a")
    with pytest.raises(InvalidLineError, match="At least one field is required: m,host=a"):
        builder.build()


def test_a_negative_uint64_raises_value_error() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        LineBuilder("m").uint64_field("u", -1)


def test_the_errors_share_the_engines_base_class_and_are_not_value_errors() -> None:
    # a plugin catching ValueError around tag() would not catch the real engine's errors either
    assert issubclass(InvalidKeyError, InfluxDBError) and not issubclass(
        InvalidKeyError, ValueError
    )


def test_values_are_written_in_the_engines_format_and_order() -> None:
    line = (
        LineBuilder("m")
        .tag("z", "last, but=first \\")
        .tag("a", "")
        .float64_field("whole", 3)
        .float64_field("part", 0.25)
        .bool_field("yes", True)
        .bool_field("no", False)
        .string_field("s", 'say "hi" \\')
        .uint64_field("u", 7)
        .time_ns(42)
        .build()
    )
    # tags in the order added, not sorted; whole floats as N.0; booleans t/f
    assert line == (
        "m,z=last\\,\\ but\\=first\\ \\\\,a= whole=3.0,part=0.25,yes=t,no=f,"
        's="say \\"hi\\" \\\\",u=7u 42'
    )


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_float_is_accepted_by_the_builder_but_not_by_the_write(value: float) -> None:
    # InfluxDB 3's builder formats inf/nan with str(); its write then refuses the line (and with
    # accept_partial=false every other line of the call): the local parser does the same
    line = LineBuilder("m").float64_field("v", value).build()
    with pytest.raises(LineProtocolError):
        parse_line(line, "ns")


def test_an_empty_tag_value_is_accepted_by_the_builder_but_not_by_the_write() -> None:
    line = LineBuilder("m").tag("host", "").int64_field("v", 1).build()
    with pytest.raises(LineProtocolError):
        parse_line(line, "ns")


def test_wrong_value_types_fail_as_the_engines_python_does() -> None:
    with pytest.raises(AttributeError):
        LineBuilder("m").string_field("s", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LineBuilder("m").float64_field("f", "1.5")  # type: ignore[arg-type]
    # int64_field converts nothing: a float ends up in the line, which the write then refuses
    line = LineBuilder("m").int64_field("i", 1.5).build()  # type: ignore[arg-type]
    assert line == "m i=1.5i"
    with pytest.raises(LineProtocolError):
        parse_line(line, "ns")
