"""Runs of same-shaped lines of line protocol parsed a column at a time, at C speed.

A recorded file is mostly one line shape repeated: ``cpu,host=h007 temp=50.1,load=0.4 1700000010``
with only the values changing. Per line, Python would split, look up and convert each piece; here
a whole run of lines is cut into its values with ``str.replace`` and one ``str.split``, each
column is checked with a few string searches over the joined column and converted with
``map(float, ...)``, and the rows are built by one comprehension.

Nothing is assumed: the values are put back between the shape's fixed texts and the result must
be the run's text exactly, and every value must be one the general parser reads the same way
(a tag value without separators, a float InfluxDB accepts, an integer in range...). A run that
fails any check returns ``None`` and its lines go through the per-line parser, which alone
decides errors and their messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from operator import mul
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

TRUE_SPELLINGS = frozenset({"t", "T", "true", "True", "TRUE"})
FALSE_SPELLINGS = frozenset({"f", "F", "false", "False", "FALSE"})
_BOOLEANS = dict.fromkeys(TRUE_SPELLINGS, True) | dict.fromkeys(FALSE_SPELLINGS, False)

#: Stands in for the shape's fixed texts while a run is cut into values; a line holding it
#: only fails the final check.
_CUT = "\x00"


@dataclass(slots=True)
class RowRun:
    """Consecutive physical lines of one table and one set of columns, as engine rows.

    ``rows[i]`` came from line ``first_line + i``; every row has the keys ``tag_names``, then
    the fields, then ``time`` (the order ``to_engine_row`` gives). A run is never empty.
    """

    table: str
    tag_names: tuple[str, ...]
    rows: list[dict[str, Any]]
    first_line: int


@dataclass(frozen=True, slots=True)
class LineShape:
    """What the lines of a run share: table, tag and field names, field types, fixed texts."""

    measurement: str
    tag_names: tuple[str, ...]
    field_names: tuple[str, ...]
    kinds: tuple[str, ...]  # per field: "float", "int", "uint" or "bool"
    #: the fixed text before each value (tags, fields, timestamp); the first starts the line
    texts: tuple[str, ...]


#: Columns (tags, fields and time) of the widest shape parsed as runs: the work on a run is
#: one pass over its text per column, so a line of a million fields goes line by line.
MAX_WIDTH = 64


def shape_of(line: str) -> LineShape | None:
    """The shape of a line the per-line fast parser accepted (no escape, no quote, single
    spaces), or ``None`` for one without a timestamp or with more than ``MAX_WIDTH`` columns."""
    parts = line.split(" ")
    if len(parts) != 3:
        return None
    head, body, _ = parts
    if head.count(",") + body.count(",") + 2 > MAX_WIDTH:
        return None  # each of its fixed texts is one pass over the run
    measurement, *tag_pairs = head.split(",")
    tag_names = tuple(pair.partition("=")[0] for pair in tag_pairs)
    field_names: list[str] = []
    kinds: list[str] = []
    for pair in body.split(","):
        name, _, raw = pair.partition("=")
        field_names.append(name)
        last = raw[-1:]
        if last == "i":
            kinds.append("int")
        elif last == "u":
            kinds.append("uint")
        elif raw in _BOOLEANS:
            kinds.append("bool")
        else:
            kinds.append("float")
    suffixes = ["i" if kind == "int" else "u" if kind == "uint" else "" for kind in kinds]
    # the fixed text before a value: all from the end of the value before (the line end, a
    # type suffix, separators and the next name)
    texts: list[str] = []
    before = "\n" + measurement
    for name in tag_names:
        texts.append(before + f",{name}=")
        before = ""
    separator = " "
    for name, suffix in zip(field_names, suffixes, strict=True):
        texts.append(before + separator + f"{name}=")
        before, separator = suffix, ","
    texts.append(before + " ")
    return LineShape(measurement, tag_names, tuple(field_names), tuple(kinds), tuple(texts))


def parse_run(
    lines: list[str], shape: LineShape, unit: str, first_line: int, mixed: bool = False
) -> RowRun | None:
    """``lines`` (physical lines without their line ends) as one run of ``shape``, or ``None``
    when any line is not exactly of that shape with values the general parser reads alike.
    ``mixed``: the lines are likely of several shapes; a quick look first may spare the work."""
    count = len(lines)
    text = "\n" + "\n".join(lines)
    if "\\" in text or '"' in text:
        return None
    texts = shape.texts
    if mixed and any(text.count(fixed) < count for fixed in texts):
        return None
    width = len(texts)
    cut = text
    for fixed in sorted(set(texts), key=len, reverse=True):
        cut = cut.replace(fixed, _CUT)
    values = cut.split(_CUT)  # "", then the values of each line in turn
    if len(values) != 1 + count * width:
        return None
    rebuilt: list[str] = [""] * (2 * count * width + 1)
    rebuilt[0::2] = values
    rebuilt[1::2] = texts * count
    if "".join(rebuilt) != text:
        return None
    columns: list[list[Any]] = []
    tags = len(shape.tag_names)
    for index in range(tags):
        column = values[1 + index :: width]
        joined = "".join(column)
        if not all(column) or " " in joined or "," in joined or "\n" in joined:
            return None
        columns.append(column)
    for index, kind in enumerate(shape.kinds, start=tags):
        converted = _converted(values[1 + index :: width], kind)
        if converted is None:
            return None
        columns.append(converted)
    times = _times(values[width::width], unit)
    if times is None:
        return None
    columns.append(times)
    make_rows = _row_maker(width)
    rows = make_rows(*shape.tag_names, *shape.field_names, "time")(columns)
    return RowRun(shape.measurement, shape.tag_names, rows, first_line)


def _converted(column: list[str], kind: str) -> list[Any] | None:
    try:
        if kind == "bool":
            return list(map(_BOOLEANS.__getitem__, column))
        joined = ",".join(column)
        if not _plain_ascii(joined):
            return None
        if kind == "float":
            # on ASCII without blanks, "_", "+" and n/N (nan, inf, infinity), Python's float
            # takes exactly InfluxDB's floats; it refuses the rest ("", "-", "1.2.3", "1e")
            if "n" in joined or "N" in joined:
                return None
            return list(map(float, column))
        numbers = list(map(int, column))  # now only -?\d+ gets through int
        if kind == "uint":
            return numbers if "-" not in joined and max(numbers) <= UINT64_MAX else None
        return numbers if min(numbers) >= INT64_MIN and max(numbers) <= INT64_MAX else None
    except (ValueError, KeyError):  # the per-line parser says why
        return None


#: What Python's ``float`` and ``int`` accept around and inside a number and InfluxDB does not.
_NOT_IN_NUMBERS = (" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "_")


def _plain_ascii(joined: str) -> bool:
    """Could the comma-joined values be InfluxDB numbers as far as ``float`` and ``int``
    cannot tell: ASCII (no other script's digits), no blank, no ``_``, none starting with
    ``+``?"""
    if not joined.isascii() or joined[:1] == "+" or ",+" in joined:
        return False
    return not any(character in joined for character in _NOT_IN_NUMBERS)


#: ``auto`` precision: the unit a timestamp's magnitude implies (InfluxDB 3's rule).
_AUTO_LIMITS = ((5_000_000_000, 1_000_000_000), (5_000_000_000_000, 1_000_000), (5 * 10**15, 1_000))


def _times(column: list[str], unit: str) -> list[int] | None:
    """The timestamps in ns, or ``None`` when one is not an integer, or (``auto``) the run's
    timestamps are not all of one unit, or one falls outside int64 ns. Series written together
    share their times: each distinct one is converted once, and the rows share its int."""
    if not _plain_ascii(",".join(column)):
        return None
    if not _repeats(column):
        return _scaled(column, unit)
    texts = list(dict.fromkeys(column))
    converted = _scaled(texts, unit)
    if converted is None:
        return None
    return list(map(dict(zip(texts, converted, strict=True)).__getitem__, column))


#: Values ``_repeats`` looks at.
_SAMPLE = 256


def _repeats(column: list[str]) -> bool:
    """Do the column's values repeat (the times of series written together), so converting
    each distinct value once and looking the rest up pays (and the rows share the ints)?"""
    sample = column[:_SAMPLE]
    return len(set(sample)) * 2 <= len(sample)


def _scaled(column: list[str], unit: str) -> list[int] | None:
    try:
        stamps = list(map(int, column))
    except ValueError:
        return None
    low, high = min(stamps), max(stamps)
    if unit == "auto":
        if low < 0:
            return None  # magnitudes on both sides of zero: the per-line path scales each
        scale = _auto_scale(low)
        if scale != _auto_scale(high):
            return None
    else:
        scale = NS_PER_UNIT[unit]
    if not (low * scale >= INT64_MIN and high * scale <= INT64_MAX):
        return None
    return stamps if scale == 1 else list(map(mul, stamps, repeat(scale)))


def _auto_scale(stamp: int) -> int:
    for limit, scale in _AUTO_LIMITS:
        if stamp < limit:
            return scale
    return 1


@lru_cache(maxsize=MAX_WIDTH)
def _row_maker(width: int) -> Callable[..., Callable[[list[list[Any]]], list[dict[str, Any]]]]:
    """For ``width`` columns: ``make(*names)(columns)`` gives one dict per row, keys in order.

    A dict display in a comprehension builds a row three times as fast as ``dict(zip(...))``;
    its source depends on the number of columns only (names are passed as arguments, never
    written into the source), so it is generated once per width.
    """
    keys = ", ".join(f"k{i}" for i in range(width))
    values = "".join(f"v{i}, " for i in range(width))
    pairs = ", ".join(f"k{i}: v{i}" for i in range(width))
    source = (
        f"def make({keys}):\n"
        f"    return lambda columns: [{{{pairs}}} for {values} in zip(*columns)]\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # the source holds no data, only column numbers
    return namespace["make"]  # type: ignore[no-any-return]
