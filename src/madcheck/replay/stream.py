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

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from madcheck.engine.lineprotocol import LineError, Point, RowBlock, RowRun, to_engine_row

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

    def rows(self, source: str, blocks: Iterable[RowBlock]) -> Iterator[Admitted]:
        """The admitted rows of ``blocks`` (as ``iter_row_blocks`` gives them), a block at a
        time, split where a row brings new columns."""
        counts = self.counts
        measurement = self.measurement
        for block in blocks:
            counts.lines += len(block)  # and a run's other lines, below
            out = Admitted()
            keep = out.rows.append
            for item in block:
                kind = type(item)
                if kind is tuple:
                    table, tags, row, number = item  # type: ignore[misc]
                    if table != measurement:
                        self._other_table(table, 1)
                        continue
                    checked_tags, checked_columns = self._checked
                    if tags.keys() == checked_tags and row.keys() == checked_columns:
                        keep(row)  # the usual line: checked in two C-level comparisons
                        continue
                    tag_names, columns = tags.keys(), row.keys()
                    rows = [row]
                elif kind is RowRun:
                    assert isinstance(item, RowRun)
                    table, tag_names, rows = item.table, item.tag_names, item.rows
                    number = item.first_line
                    counts.lines += len(rows) - 1
                    columns = rows[0].keys()
                    checked_tags, checked_columns = self._checked
                    if (
                        table == measurement
                        and checked_tags.issuperset(tag_names)
                        and len(checked_tags) == len(tag_names)
                        and columns == checked_columns
                    ):  # a run: every line of it has these columns
                        out.rows += rows
                        continue
                elif kind is Point:
                    assert isinstance(item, Point)
                    if item.measurement == measurement and item.time_ns == NO_TIME:
                        self._bad(source, item.line_number, NO_TIME_MESSAGE)
                        continue
                    table, tag_names = item.measurement, item.tags.keys()
                    rows = [to_engine_row(item)]
                    columns = rows[0].keys()
                    number = item.line_number
                else:
                    assert isinstance(item, LineError)
                    self._bad(source, item.line_number, item.error_message)
                    continue
                new_columns = self._admits(source, table, tag_names, columns, number, len(rows))
                if new_columns is None:
                    continue
                if new_columns[0] or new_columns[1]:
                    if out.rows:
                        counts.points += len(out.rows)
                        yield out
                    out = Admitted([], *new_columns)
                    keep = out.rows.append
                out.rows += rows
            if out.rows:
                counts.points += len(out.rows)
                yield out

    def _admits(
        self,
        source: str,
        table: str,
        tag_names: Collection[str],
        columns: Collection[str],
        first_line: int,
        lines: int,
    ) -> tuple[list[str], list[str]] | None:
        """``None`` when the ``lines`` lines from ``first_line`` on (all with these columns)
        are refused, else the columns they bring (tags, fields)."""
        if table != self.measurement:
            self._other_table(table, lines)
            return None
        fields = [name for name in columns if name not in tag_names and name != "time"]
        is_tag = self._is_tag
        for names, tag in ((tag_names, True), (fields, False)):
            for name in names:
                known = is_tag.get(name)
                if known is not None and known != tag:
                    was, now = ("tag", "field") if known else ("field", "tag")
                    message = f"column {name!r} is a {was} in earlier lines, a {now} here"
                    for number in range(first_line, first_line + lines):
                        self._bad(source, number, message)
                    return None
        new_tags = [name for name in tag_names if name not in is_tag]
        new_fields = [name for name in fields if name not in is_tag]
        is_tag.update(dict.fromkeys(new_tags, True))
        is_tag.update(dict.fromkeys(new_fields, False))
        self._checked = (set(tag_names), set(columns))
        return new_tags, new_fields

    def _other_table(self, table: str, lines: int) -> None:
        counts = self.counts
        counts.other_tables += lines
        if len(counts.other_names) < 10:
            counts.other_names.add(table)

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
