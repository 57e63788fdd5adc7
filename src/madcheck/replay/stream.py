"""Parsed lines -> the flush batches the plugin is called with.

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

from madcheck.engine.lineprotocol import FastRow, LineError, Point, to_engine_row

#: Stands for "the line had no timestamp" (``iter_rows`` fills in this default).
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
    """Keeps the rows of one table that the engine would accept, reporting the other lines.

    It also notes the columns seen for the first time (``new_tags``, ``new_fields``), for the
    schema the plugin queries; ``batches`` takes them with the next batch.
    """

    def __init__(self, measurement: str, on_bad_line: BadLine) -> None:
        self.measurement = measurement
        self.counts = StreamCounts()
        self._on_bad_line = on_bad_line
        self._is_tag: dict[str, bool] = {}
        self.new_tags: list[str] = []
        self.new_fields: list[str] = []
        # Consecutive lines nearly always carry the same columns: those were checked already
        # (the tag names, and every column of the row: tags, fields and time).
        self._checked: tuple[set[str], set[str]] = (set(), set())

    def rows(self, source: str, items: Iterable[FastRow | Point | LineError]) -> Iterator[Row]:
        """The engine rows of the admitted lines of ``items`` (as ``iter_rows`` yields them)."""
        counts = self.counts
        measurement = self.measurement
        lines = rows = 0
        try:
            for item in items:
                lines += 1
                if type(item) is tuple:
                    table, tags, row, number = item
                    checked_tags, checked_columns = self._checked
                    if (
                        table == measurement
                        and tags.keys() == checked_tags
                        and row.keys() == checked_columns
                    ):  # the usual line: everything checked in a few C-level comparisons
                        rows += 1
                        yield row
                        continue
                    if self._admits(source, table, tags, row, number):
                        rows += 1
                        yield row
                    continue
                if type(item) is Point:
                    if item.measurement == measurement and item.time_ns == NO_TIME:
                        self._bad(source, item.line_number, NO_TIME_MESSAGE)
                        continue
                    row = to_engine_row(item)
                    if self._admits(source, item.measurement, item.tags, row, item.line_number):
                        rows += 1
                        yield row
                    continue
                assert isinstance(item, LineError)
                self._bad(source, item.line_number, item.error_message)
        finally:
            counts.lines += lines
            counts.points += rows

    def _admits(
        self, source: str, table: str, tags: dict[str, str], row: Row, line_number: int
    ) -> bool:
        counts = self.counts
        if table != self.measurement:
            counts.other_tables += 1
            if len(counts.other_names) < 10:
                counts.other_names.add(table)
            return False
        problem = self._conflict(tags, row)
        if problem:
            self._bad(source, line_number, problem)
            return False
        return True

    def _bad(self, source: str, line_number: int, message: str) -> None:
        self.counts.bad_lines += 1
        self._on_bad_line(source, line_number, message)

    def _conflict(self, tags: dict[str, str], row: Row) -> str | None:
        fields = [name for name in row if name not in tags and name != "time"]
        is_tag = self._is_tag
        for names, tag in ((tags, True), (fields, False)):
            for name in names:
                known = is_tag.get(name)
                if known is not None and known != tag:
                    was, now = ("tag", "field") if known else ("field", "tag")
                    return f"column {name!r} is a {was} in earlier lines, a {now} here"
        for names, tag, new in ((tags, True, self.new_tags), (fields, False, self.new_fields)):
            for name in names:
                if name not in is_tag:
                    is_tag[name] = tag
                    new.append(name)
        self._checked = (set(tags), set(row))
        return None


NO_TIME_MESSAGE = "no timestamp: a replay needs the data's time"


def batches(
    rows: Iterable[Row], admission: Admission, interval_ns: int | None, max_rows: int
) -> Iterator[Batch]:
    """Group rows into plugin calls; see the module docstring. The columns ``admission``
    saw first in a row go with the batch holding that row (the plugin is called once the
    batch is written, so its schema query sees them)."""
    batch = Batch()
    batch_rows = batch.rows
    end_ns = 2**64  # no time limit until a batch has a first row
    for row in rows:
        time_ns = row["time"]
        if batch_rows and (time_ns >= end_ns or len(batch_rows) >= max_rows):
            yield batch
            batch = Batch()
            batch_rows = batch.rows
            end_ns = 2**64
        if not batch_rows and interval_ns is not None:
            end_ns = time_ns + interval_ns
        batch_rows.append(row)
        if admission.new_tags or admission.new_fields:
            batch.new_tags += admission.new_tags
            batch.new_fields += admission.new_fields
            admission.new_tags, admission.new_fields = [], []
    if batch_rows:
        yield batch
