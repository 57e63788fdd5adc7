"""Parsed points -> the flush batches the plugin is called with.

The engine calls a data-writes trigger once per WAL flush with the rows written since the last
one. The plugin's results do not depend on how rows are batched (its rules run on data time and
it orders each series' rows by time; a property test checks it), so a replay hands it large
batches: a batch closes when it holds ``max_rows`` (which bounds memory), or, with an
``interval``, also when a row is that much data time past the batch's first row, as engine
flushes would. Late rows join the batch being built, as late writes do in the engine.

This is also where a line the engine would refuse is refused: no timestamp, or a column used as a
tag in one line and as a field in another (InfluxDB rejects the later line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from madcheck.engine.lineprotocol import LineError, Point, to_engine_row

#: Stands for "the line had no timestamp" (``iter_lines`` fills in this default).
NO_TIME = -(2**63)

Row = dict[str, Any]
BadLine = Callable[[str, int, str], None]


@dataclass
class Batch:
    """One plugin call's rows, with the columns first seen in them (for the catalog)."""

    rows: list[Row] = field(default_factory=list)
    new_tags: list[str] = field(default_factory=list)
    new_fields: list[str] = field(default_factory=list)


@dataclass
class StreamCounts:
    lines: int = 0
    points: int = 0
    bad_lines: int = 0
    other_tables: int = 0
    #: A few names of the other tables, to help when ``--measurement`` matched nothing.
    other_names: set[str] = field(default_factory=set)


class Admission:
    """Keeps the points of one table that the engine would accept, reporting the others."""

    def __init__(self, measurement: str, on_bad_line: BadLine) -> None:
        self.measurement = measurement
        self.counts = StreamCounts()
        self._on_bad_line = on_bad_line
        self._is_tag: dict[str, bool] = {}
        # Consecutive lines nearly always carry the same columns: those were checked already.
        self._checked: tuple[set[str], set[str]] = (set(), set())

    def points(self, source: str, items: Iterable[Point | LineError]) -> Iterator[Point]:
        counts = self.counts
        measurement = self.measurement
        for item in items:
            counts.lines += 1
            if isinstance(item, LineError):
                self._bad(source, item.line_number, item.error_message)
                continue
            if item.measurement != measurement:
                counts.other_tables += 1
                if len(counts.other_names) < 10:
                    counts.other_names.add(item.measurement)
                continue
            if item.time_ns == NO_TIME:
                self._bad(source, item.line_number, "no timestamp: a replay needs the data's time")
                continue
            problem = self._conflict(item)
            if problem:
                self._bad(source, item.line_number, problem)
                continue
            counts.points += 1
            yield item

    def _bad(self, source: str, line_number: int, message: str) -> None:
        self.counts.bad_lines += 1
        self._on_bad_line(source, line_number, message)

    def _conflict(self, point: Point) -> str | None:
        tags, fields = point.tags.keys(), point.fields.keys()
        if tags == self._checked[0] and fields == self._checked[1]:
            return None
        is_tag = self._is_tag
        for names, tag in ((point.tags, True), (point.fields, False)):
            for name in names:
                known = is_tag.setdefault(name, tag)
                if known != tag:
                    was, now = ("tag", "field") if known else ("field", "tag")
                    return f"column {name!r} is a {was} in earlier lines, a {now} here"
        self._checked = (set(tags), set(fields))
        return None


def batches(points: Iterable[Point], interval_ns: int | None, max_rows: int) -> Iterator[Batch]:
    """Group points into plugin calls; see the module docstring."""
    known: set[str] = set()
    last_columns: tuple[set[str], set[str]] = (set(), set())
    batch = Batch()
    end_ns = 0
    if interval_ns is None:
        interval_ns = 2**64  # never closes by time
    for point in points:
        if batch.rows and (point.time_ns >= end_ns or len(batch.rows) >= max_rows):
            yield batch
            batch = Batch()
        if not batch.rows:
            end_ns = point.time_ns + interval_ns
        tags, fields = point.tags.keys(), point.fields.keys()
        if tags != last_columns[0] or fields != last_columns[1]:
            batch.new_tags.extend(name for name in tags if name not in known)
            batch.new_fields.extend(name for name in fields if name not in known)
            known.update(tags, fields)
            last_columns = (set(tags), set(fields))
        batch.rows.append(to_engine_row(point))
    if batch.rows:
        yield batch
