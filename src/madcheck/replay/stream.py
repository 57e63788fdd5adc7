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

#: Stands for "the line had no timestamp" (``iter_row_blocks`` fills in this default).
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
class Admitted:
    """Admitted rows in file order; ``new_tags`` and ``new_fields`` were first seen in the
    first of them (a row with new columns always starts a new ``Admitted``)."""

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
    """Keeps the rows of one table that the engine would accept, reporting the other lines,
    and notes the columns seen for the first time, for the schema the plugin queries."""

    def __init__(self, measurement: str, on_bad_line: BadLine) -> None:
        self.measurement = measurement
        self.counts = StreamCounts()
        self._on_bad_line = on_bad_line
        self._is_tag: dict[str, bool] = {}
        # Consecutive lines nearly always carry the same columns: those were checked already
        # (the tag names, and every column of the row: tags, fields and time).
        self._checked: tuple[set[str], set[str]] = (set(), set())

    def rows(
        self, source: str, blocks: Iterable[list[FastRow | Point | LineError]]
    ) -> Iterator[Admitted]:
        """The admitted rows of ``blocks`` (as ``iter_row_blocks`` gives them), a block at a
        time, split where a row brings new columns."""
        counts = self.counts
        measurement = self.measurement
        for block in blocks:
            counts.lines += len(block)
            out = Admitted()
            keep = out.rows.append
            for item in block:
                if type(item) is tuple:
                    table, tags, row, number = item
                    checked_tags, checked_columns = self._checked
                    if (
                        table == measurement
                        and tags.keys() == checked_tags
                        and row.keys() == checked_columns
                    ):  # the usual line: everything checked in a few C-level comparisons
                        keep(row)
                        continue
                elif type(item) is Point:
                    if item.measurement == measurement and item.time_ns == NO_TIME:
                        self._bad(source, item.line_number, NO_TIME_MESSAGE)
                        continue
                    table, tags, row = item.measurement, item.tags, to_engine_row(item)
                    number = item.line_number
                else:
                    assert isinstance(item, LineError)
                    self._bad(source, item.line_number, item.error_message)
                    continue
                columns = self._admits(source, table, tags, row, number)
                if columns is None:
                    continue
                if columns[0] or columns[1]:
                    if out.rows:
                        counts.points += len(out.rows)
                        yield out
                    out = Admitted([], *columns)
                    keep = out.rows.append
                keep(row)
            if out.rows:
                counts.points += len(out.rows)
                yield out

    def _admits(
        self, source: str, table: str, tags: dict[str, str], row: Row, line_number: int
    ) -> tuple[list[str], list[str]] | None:
        """``None`` when the line is refused, else the columns it brings (tags, fields)."""
        counts = self.counts
        if table != self.measurement:
            counts.other_tables += 1
            if len(counts.other_names) < 10:
                counts.other_names.add(table)
            return None
        fields = [name for name in row if name not in tags and name != "time"]
        is_tag = self._is_tag
        for names, tag in ((tags, True), (fields, False)):
            for name in names:
                known = is_tag.get(name)
                if known is not None and known != tag:
                    was, now = ("tag", "field") if known else ("field", "tag")
                    self._bad(
                        source,
                        line_number,
                        f"column {name!r} is a {was} in earlier lines, a {now} here",
                    )
                    return None
        new_tags = [name for name in tags if name not in is_tag]
        new_fields = [name for name in fields if name not in is_tag]
        is_tag.update(dict.fromkeys(new_tags, True))
        is_tag.update(dict.fromkeys(new_fields, False))
        self._checked = (set(tags), set(row))
        return new_tags, new_fields

    def _bad(self, source: str, line_number: int, message: str) -> None:
        self.counts.bad_lines += 1
        self._on_bad_line(source, line_number, message)


NO_TIME_MESSAGE = "no timestamp: a replay needs the data's time"


def batches(chunks: Iterable[Admitted], interval_ns: int | None, max_rows: int) -> Iterator[Batch]:
    """Group admitted rows into plugin calls; see the module docstring. The columns first
    seen in a row go with the batch holding that row (the plugin is called once the batch is
    written, so its schema query sees them)."""
    batch = Batch()
    end_ns = 2**64  # no time limit until a batch has a first row
    for chunk in chunks:
        rows = chunk.rows
        if interval_ns is None:  # by size alone: whole slices of the chunk at a time
            at = 0
            while at < len(rows):
                if len(batch.rows) >= max_rows:
                    yield batch
                    batch = Batch()
                if at == 0:
                    batch.new_tags += chunk.new_tags
                    batch.new_fields += chunk.new_fields
                room = max_rows - len(batch.rows)
                batch.rows += rows[at : at + room]
                at += room
            continue
        for index, row in enumerate(rows):
            time_ns = row["time"]
            if batch.rows and (time_ns >= end_ns or len(batch.rows) >= max_rows):
                yield batch
                batch = Batch()
            if not batch.rows:
                end_ns = time_ns + interval_ns
            if index == 0:
                batch.new_tags += chunk.new_tags
                batch.new_fields += chunk.new_fields
            batch.rows.append(row)
    if batch.rows:
        yield batch
