"""CSV exports (``time`` plus tag and field columns) read as line-protocol points.

A CSV file does not say which columns are tags. The rule, decided per column at its first
non-empty value: a column named by ``--tags`` is a tag, one named by ``--fields`` (or monitored in
``mad_thresholds``) is a field; any other column is a field when that first value is a number or a
boolean and a tag otherwise. So ``host,region,temp,time`` needs no help, while a numeric tag such
as ``rack=12`` must be named with ``--tags rack``.

``time`` is an integer (scaled by ``--precision``, ``auto`` guessing the unit from its magnitude)
or an RFC 3339 timestamp; one without a zone, as InfluxDB 3's own CSV output writes it, is UTC.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from madcheck.engine.lineprotocol import (
    FieldValue,
    LineError,
    Point,
    normalize_precision,
    timestamp_to_ns,
)
from madcheck.engine.timestamps import parse_timestamp_ns

_INTEGER = re.compile(r"[+-]?\d+")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class CsvLayout:
    """Columns whose kind the user fixed; the others are classified by their first value."""

    tags: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()
    time_column: str = "time"


def _field_value(text: str) -> FieldValue:
    """A number or boolean when the text is one, otherwise the text itself."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return _BOOLEANS.get(text.lower(), text)


def _is_field_text(text: str) -> bool:
    return not isinstance(_field_value(text), str)


def _time_ns(text: str, precision: str) -> int:
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return timestamp_to_ns(int(text), precision)
    return parse_timestamp_ns(text)


def read_csv(
    text: TextIO, measurement: str, precision: str, layout: CsvLayout
) -> Iterator[Point | LineError]:
    """Every data row as a ``Point`` of ``measurement``, or a ``LineError`` naming its line."""
    unit = normalize_precision(precision)
    reader = csv.reader(text)
    header: list[str] | None = None
    for cells in reader:
        if cells and any(cell.strip() for cell in cells):
            header = [cell.strip() for cell in cells]
            break
    if header is None:
        return
    if layout.time_column not in header:
        yield LineError(
            reader.line_num,
            ",".join(header),
            f"the CSV header has no {layout.time_column!r} column",
        )
        return
    time_index = header.index(layout.time_column)
    is_tag: list[bool | None] = [None] * len(header)
    for cells in reader:
        number = reader.line_num
        if not cells or not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield LineError(
                number,
                ",".join(cells),
                f"expected {len(header)} columns as in the header, found {len(cells)}",
            )
            continue
        try:
            time_ns = _time_ns(cells[time_index], unit)
        except ValueError as error:
            yield LineError(number, ",".join(cells), f"column {layout.time_column!r}: {error}")
            continue
        tags: dict[str, str] = {}
        fields: dict[str, FieldValue] = {}
        for index, (name, cell) in enumerate(zip(header, cells, strict=True)):
            if index == time_index or cell == "":
                continue
            kind = is_tag[index]
            if kind is None:
                kind = is_tag[index] = _classify(name, cell, layout)
            if kind:
                tags[name] = cell
            else:
                fields[name] = _field_value(cell)
        if not fields:
            yield LineError(number, ",".join(cells), "the row has no field values")
            continue
        yield Point(measurement, tags, fields, time_ns, number)


def _classify(name: str, first_value: str, layout: CsvLayout) -> bool:
    """True when the column is a tag."""
    if name in layout.tags:
        return True
    if name in layout.fields:
        return False
    return not _is_field_text(first_value)
