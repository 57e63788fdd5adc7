"""Query results rendered as ``/api/v3/query_sql`` renders them: json, jsonl, csv and pretty."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS: dict[str, str] = {
    "json": "application/json",
    "jsonl": "application/jsonl",
    "csv": "text/csv; charset=utf-8",
    "pretty": "text/plain; charset=utf-8",
}


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column that occurs, in order of first appearance (rows may omit null columns)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """Render ``rows`` in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return json.dumps(list(rows))
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    columns = columns_of(rows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
        return buffer.getvalue()
    if fmt == "pretty":
        return pretty_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows])
    raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


def pretty_table(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """A boxed text table like the one ``influxdb3 query`` prints."""
    widths = [len(column) for column in columns]
    for line in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, line, strict=True)]
    border = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

    def format_line(values: Sequence[str]) -> str:
        padded = (f" {value.ljust(width)} " for value, width in zip(values, widths, strict=True))
        return "|" + "|".join(padded) + "|"

    lines = [border, format_line(columns), border]
    lines.extend(format_line(line) for line in cells)
    if cells:
        lines.append(border)
    return "\n".join(lines) + "\n"
