"""Recorded data in, parsed points (or per-line errors) out, one line at a time.

Files are read as streams, so a replay of a file larger than memory works; gzip is recognised by
its magic bytes whatever the file is called. The position in the underlying file (compressed
bytes for gzip) is what the progress bar shows.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO

from madcheck.detect.alerts import Tags
from madcheck.engine.lineprotocol import (
    LINES_PER_BLOCK,
    LineProtocolError,
    RowBlock,
    iter_row_blocks,
    iter_text_row_blocks,
    parse_line,
)
from madcheck.replay.csvinput import CsvLayout, read_csv
from madcheck.replay.stream import NO_TIME

_GZIP_MAGIC = b"\x1f\x8b"


class InputError(Exception):
    """A file cannot be read on (a truncated download, say); what was read before still counts."""


@dataclass(frozen=True)
class InputOptions:
    """How to read every input file."""

    measurement: str
    format: str = "auto"
    precision: str = "auto"
    csv: CsvLayout = field(default_factory=CsvLayout)


#: ``tables_in`` stops looking once it has found this many table names.
TABLES_LISTED = 10


def tables_in(paths: list[Path], requested_format: str) -> set[str] | None:
    """The table names of line protocol files (up to ``TABLES_LISTED``); ``None`` when one of
    the files is CSV, which names no table. Every line is looked at (a second table may come
    last), in large chunks with C-level searches only: a chunk whose lines all start with one
    plain name is counted, not searched; in any other, a regular expression finds the names
    and only a line whose table name holds a backslash escape is parsed."""
    names: set[str] = set()
    for path in paths:
        source = InputFile(path)
        if source.format_for(requested_format) == "csv":
            return None
        for chunk in source.chunks():
            only = _only_table(chunk)
            if only is not None:
                names.add(only)
                continue
            names.update(_PLAIN_NAME.findall(chunk))
            for line in _ESCAPED_NAME.findall(chunk):
                try:
                    names.add(parse_line(line.strip(" \t\r"), "ns", default_time_ns=0).measurement)
                except LineProtocolError:
                    continue  # reported when the replay reads it
            if len(names) >= TABLES_LISTED:
                return names
    return names


def _only_table(chunk: str) -> str | None:
    """The name every line of ``chunk`` starts with (then a comma or a space), if there is
    one: what the searches below would find in it, by three counts."""
    first = _PLAIN_NAME.match(chunk)
    if first is None or first.start(1) != 0:
        return None
    name = first.group(1)
    text = "\n" + chunk
    lines = chunk.count("\n") + (not chunk.endswith("\n"))
    if text.count(f"\n{name},") + text.count(f"\n{name} ") == lines:
        return name
    return None


#: The table name at the start of a line (not a comment), when it has no escape.
_PLAIN_NAME = re.compile(r"^[ \t]*([^,\s\\#][^,\s\\]*)(?=[, ])", re.MULTILINE)
#: A whole line whose table name holds a backslash.
_ESCAPED_NAME = re.compile(r"^[ \t]*[^,\s#][^,\s]*\\.*$", re.MULTILINE)
#: Characters ``InputFile.chunks`` reads at a time (then up to the end of the line).
CHUNK_CHARS = 1 << 20
#: Characters handed to the parser at a time, and read at a time to make them up.
PIECE_CHARS, _STEP_CHARS = 1 << 18, 1 << 13


class InputFile:
    """One input file, opened lazily; ``position`` is how far into it reading has got."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._raw: IO[bytes] | None = None

    @property
    def position(self) -> int:
        raw = self._raw
        if raw is None or raw.closed:
            return self.size if raw is not None else 0
        return raw.tell()

    def format_for(self, requested: str) -> str:
        if requested != "auto":
            return requested
        name = self.path.name.lower().removesuffix(".gz")
        return "csv" if name.endswith(".csv") else "lp"

    def chunks(self) -> Iterator[str]:
        """The file's text in pieces of whole lines, decompressed, read as far as it can be."""
        try:
            with self._text(universal_newlines=True) as text:
                while chunk := text.read(CHUNK_CHARS):
                    yield chunk + text.readline()
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
            return

    @contextmanager
    def _text(self, universal_newlines: bool = False) -> Iterator[io.TextIOWrapper]:
        """The decompressed text; ``universal_newlines`` (line protocol) reads ``\r\n`` and a
        lone ``\r`` as ``\n``, as iterating its lines did, so a piece is cut at ``\n`` only;
        CSV keeps them for the csv module."""
        with self.path.open("rb") as raw:
            self._raw = raw
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            binary: gzip.GzipFile | IO[bytes] = raw
            if compressed:
                binary = gzip.GzipFile(fileobj=raw, mode="rb")
            # utf-8-sig: spreadsheet exports start with a byte order mark, which would otherwise
            # become part of the first column's name. errors="replace": a stray byte spoils one
            # value, not the whole replay.
            newline = None if universal_newlines else ""
            yield io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline=newline)

    def items(self, options: InputOptions, only: SeriesLines | None = None) -> Iterator[RowBlock]:
        """Every line of the file, parsed, in blocks (as ``iter_row_blocks`` gives them), or
        with ``only`` the lines it keeps (line protocol only); the file is closed when the
        iterator ends."""
        csv = self.format_for(options.format) == "csv"
        with self._text(universal_newlines=not csv) as text:
            try:
                if csv:
                    points = read_csv(text, options.measurement, options.precision, options.csv)
                    while True:
                        block: RowBlock = [*islice(points, LINES_PER_BLOCK)]
                        if not block:
                            break
                        yield block
                elif only is None:
                    yield from iter_text_row_blocks(
                        _pieces(text), options.precision, default_time_ns=NO_TIME
                    )
                else:
                    lines = only.lines(text)
                    yield from iter_row_blocks(lines, options.precision, default_time_ns=NO_TIME)
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                raise InputError(f"compressed data truncated or corrupt ({error})") from None
            except OSError as error:
                raise InputError(f"read failed: {error.strerror or error}") from None


def _pieces(text: IO[str]) -> Iterator[str]:
    """The text in pieces of about ``PIECE_CHARS``, large enough that the Python steps per
    piece cost nothing, read in small steps so that a read failing (a truncated gzip file)
    loses little: what was read before it is given first."""
    held: list[str] = []
    size = 0
    try:
        while step := text.read(_STEP_CHARS):
            held.append(step)
            size += len(step)
            if size >= PIECE_CHARS:
                yield "".join(held)
                held, size = [], 0
    except Exception:
        if held:
            yield "".join(held)
        raise
    if held:
        yield "".join(held)


class SeriesLines:
    """The lines a later pass over a file needs when it follows only some series (the charts):
    those of the series ``wanted`` (table, tags as ``Series.tags()`` gives them), and the first
    line of every other line head, so the table's columns are learnt as the first pass learnt
    them. Every other line is dropped before it is parsed, by its head's text: the second pass
    of ``--plot`` then costs a fraction of the first. The head is cut at the first space and
    judged once; any head that is not plain (an escape, a quote, a leading space, a comment)
    keeps its line, and a line with an odd number of quotes (maybe a string running on over
    the next lines) turns the filter off for the rest of the file, so a kept line is never
    parsed differently than in the first pass."""

    def __init__(self, measurement: str, wanted: set[Tags]) -> None:
        self.measurement = measurement
        self.wanted = wanted

    def lines(self, text: Iterable[str]) -> Iterator[str]:
        seen: dict[str, bool] = {}  # head -> keep its later lines
        source = iter(text)
        for line in source:
            if '"' in line and line.count('"') % 2:
                yield line
                yield from source
                return
            head = line.partition(" ")[0]
            keep = seen.get(head)
            if keep is None:
                if len(seen) >= _HEADS_JUDGED:
                    seen.clear()  # a file of endless heads: judged again, memory stays bounded
                seen[head] = self._wanted(head)
                yield line
            elif keep:
                yield line

    def _wanted(self, head: str) -> bool:
        if not head or head[0] in " \t#," or "\\" in head or '"' in head:
            return True
        measurement, *pairs = head.split(",")
        if measurement != self.measurement:
            return False
        tags = []
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep:
                return True  # an error: the parser reports it
            tags.append((name, value))
        return tuple(sorted(tags)) in self.wanted


#: Line heads ``SeriesLines`` remembers at once.
_HEADS_JUDGED = 100_000
