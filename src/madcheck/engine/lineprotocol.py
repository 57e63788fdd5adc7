"""InfluxDB line protocol: text in, typed points (or per-line errors) out.

The local engine, ``madcheck write`` and ``madcheck replay`` all read line protocol through this
module, so a line is accepted or rejected the same way everywhere. Errors are reported per line
(1-based physical line numbers) and never stop the lines after them: the caller decides whether a
bad line spoils the whole write.

Most real lines contain neither backslashes nor double quotes; those take a fast path built on
``str.split``. Any other line, and any line the fast path finds suspicious, goes through the
character scanner, which is the single source of error messages.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from madcheck.engine.lineblocks import (
    FALSE_SPELLINGS,
    NS_PER_UNIT,
    TRUE_SPELLINGS,
    parse_run,
    shape_of,
)
from madcheck.engine.lineblocks import INT64_MAX as INT64_MAX
from madcheck.engine.lineblocks import INT64_MIN as INT64_MIN
from madcheck.engine.lineblocks import UINT64_MAX as UINT64_MAX
from madcheck.engine.lineblocks import RowRun as RowRun

FieldValue = float | int | bool | str

#: A string field may span physical lines (a quoted newline); give up after this many.
MAX_CONTINUATION_LINES = 1000

_PRECISION_ALIASES = {
    "auto": "auto",
    "ns": "ns",
    "n": "ns",
    "nanosecond": "ns",
    "us": "us",
    "u": "us",
    "µ": "us",
    "microsecond": "us",
    "ms": "ms",
    "millisecond": "ms",
    "s": "s",
    "second": "s",
    "m": "m",
    "minute": "m",
    "h": "h",
    "hour": "h",
}

_FLOAT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SIGNED = re.compile(r"-?\d+")
_UNSIGNED = re.compile(r"\d+")

_KEY_ESCAPABLE = frozenset(",= \\")
_MEASUREMENT_ESCAPABLE = frozenset(", \\")


@dataclass(slots=True)
class Point:
    """One parsed line: a measurement (table), its tags, typed fields and a time in ns.

    ``line_number`` and ``line`` say where the point came from, so a later check (a schema
    conflict in storage, say) can report the line the way a parse error would.
    """

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int
    line_number: int = field(default=0, compare=False)
    line: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class LineError:
    """A rejected line, shaped like an entry of InfluxDB's partial-write error ``data``."""

    line_number: int
    original_line: str
    error_message: str


class UInt64(int):
    """An integer written with the ``u`` suffix; storage types its column UInt64, not Int64."""

    __slots__ = ()


class LineProtocolError(ValueError):
    """Raised by :func:`parse_line` for a line that is not valid line protocol."""


class _Incomplete(Exception):
    """A quoted string field runs past the end of the text: the line may continue below."""


def normalize_precision(precision: str) -> str:
    """Map InfluxDB's precision spellings (v1, v2 and v3 APIs) to auto|ns|us|ms|s|m|h."""
    canonical = _PRECISION_ALIASES.get(precision.strip().lower())
    if canonical is None:
        raise ValueError(
            f"invalid precision {precision!r}: use auto, s, ms, us or ns "
            "(or second, millisecond, microsecond, nanosecond)"
        )
    return canonical


def timestamp_to_ns(value: int, precision: str) -> int:
    """Scale a written timestamp to ns; ``auto`` guesses the unit from its magnitude.

    The ``auto`` rule is InfluxDB 3's: below 5e9 seconds, below 5e12 milliseconds, below 5e15
    microseconds, otherwise nanoseconds. Raises ``ValueError`` outside the int64 ns range.
    """
    if precision == "auto":
        magnitude = abs(value)
        if magnitude < 5_000_000_000:
            unit = "s"
        elif magnitude < 5_000_000_000_000:
            unit = "ms"
        elif magnitude < 5_000_000_000_000_000:
            unit = "us"
        else:
            unit = "ns"
    else:
        unit = precision
    ns = value * NS_PER_UNIT[unit]
    if not INT64_MIN <= ns <= INT64_MAX:
        raise ValueError(f"timestamp {value} ({unit}) is outside the range of int64 nanoseconds")
    return ns


def parse_line(
    line: str, precision: str = "auto", default_time_ns: int | None = None, line_number: int = 1
) -> Point:
    """Parse one line of line protocol; raise :class:`LineProtocolError` if it is invalid."""
    unit = normalize_precision(precision)
    now = time.time_ns() if default_time_ns is None else default_time_ns
    try:
        return _parse(line, unit, now, line_number)
    except _Incomplete:
        raise LineProtocolError(_UNTERMINATED) from None


def parse_lines(
    body: str, precision: str = "auto", default_time_ns: int | None = None
) -> Iterator[Point | LineError]:
    """Parse a whole request body; see :func:`iter_lines`."""
    return iter_lines(body.split("\n"), precision, default_time_ns)


def iter_lines(
    lines: Iterable[str], precision: str = "auto", default_time_ns: int | None = None
) -> Iterator[Point | LineError]:
    """Parse lines as they arrive (a file object works), yielding points and line errors.

    Blank lines and ``#`` comments are skipped but still counted, so line numbers match what an
    editor shows. A line without a timestamp gets ``default_time_ns`` or, when that is ``None``,
    the time this function was called (one instant for the whole input, as InfluxDB does for a
    request). Memory stays bounded: lines are parsed ``LINES_PER_BLOCK`` at a time, and only a
    quoted newline makes the parser look further ahead.
    An unknown precision raises ``ValueError`` here, before any line is read.
    """
    unit = normalize_precision(precision)
    now = time.time_ns() if default_time_ns is None else default_time_ns
    # without ``as_row`` only points and line errors come out
    blocks = _parsed_blocks(_line_lists(lines), unit, now, as_row=False)
    return chain.from_iterable(blocks)  # type: ignore[arg-type]


#: What :func:`iter_row_blocks` gives for a common line: its table, its tags, its engine row
#: (tags, fields and ``time``, as :func:`to_engine_row` makes it) and its line number. The tags
#: dict is shared by every line with the same head: read it, never change it.
FastRow = tuple[str, dict[str, str], dict[str, FieldValue], int]

#: What :func:`iter_row_blocks` yields: lists of parsed lines, a ``RowRun`` standing for many.
RowBlock = list[RowRun | FastRow | Point | LineError]

#: Lines of output per block of :func:`iter_row_blocks` (at least; a block ends with a run).
LINES_PER_BLOCK = 1024
#: Lines tried at once as one ``RowRun``: from ``MAX_RUN`` down to ``MIN_RUN`` when a run fails
#: (an odd line in it), and back up as runs succeed. Shorter stretches go line by line.
MIN_RUN, MAX_RUN = 64, 1024
#: At most ``MIN_RUN << _BACKOFF_STEPS`` lines go line by line before runs are tried again.
_BACKOFF_STEPS = 6
#: Physical lines longer than this are reported, not parsed (``iter_text_row_blocks``): InfluxDB
#: 3 takes at most 10 MiB in one write request, and a file with no line end stays in bounds.
MAX_LINE_CHARS = 10 * 1024 * 1024
_TOO_LONG = f"line longer than {MAX_LINE_CHARS} characters: InfluxDB 3 takes at most 10 MiB a write"
#: How much of a too-long line its error shows.
_TOO_LONG_SHOWN = 200


def iter_row_blocks(
    lines: Iterable[str], precision: str = "auto", default_time_ns: int | None = None
) -> Iterator[RowBlock]:
    """:func:`iter_lines` for a reader of millions of lines that wants engine rows
    (``madcheck replay``), in lists of about ``LINES_PER_BLOCK`` lines' results. Consecutive
    lines of one shape come as one ``RowRun`` (parsed a column at a time, see ``lineblocks``),
    any other common line as a ``FastRow``, built without the ``Point`` and the copy of it that
    :func:`to_engine_row` would make, and any other line as ``iter_lines`` yields it. Same lines
    accepted, same errors, same line numbers."""
    unit = normalize_precision(precision)
    now = time.time_ns() if default_time_ns is None else default_time_ns
    return _parsed_blocks(_line_lists(lines), unit, now, as_row=True)


def iter_text_row_blocks(
    texts: Iterable[str], precision: str = "auto", default_time_ns: int | None = None
) -> Iterator[RowBlock]:
    """:func:`iter_row_blocks` of text read in pieces of any size (``file.read(n)``), cut
    into lines at ``\n`` here, a ``\r`` before it dropped: no Python call per line before the
    parser's. A line longer than ``MAX_LINE_CHARS`` is reported as an error, without holding
    more of it than that."""
    unit = normalize_precision(precision)
    now = time.time_ns() if default_time_ns is None else default_time_ns
    return _parsed_blocks(_text_line_lists(texts), unit, now, as_row=True)


def _line_lists(lines: Iterable[str]) -> Iterator[list[str]]:
    """Lines in lists, their line ends dropped; a failing source gives the lines before."""
    batch: list[str] = []
    add = batch.append
    for raw in lines:
        add(raw.rstrip("\r\n"))
        if len(batch) >= LINES_PER_BLOCK:
            yield batch
            batch = []
            add = batch.append
    if batch:
        yield batch


def _text_line_lists(texts: Iterable[str]) -> Iterator[list[str]]:
    """Pieces of text as lists of whole lines; see :func:`iter_text_row_blocks`. A too-long
    line is given as ``"\n"`` and its start (no line holds a ``\n``), for ``_parsed_blocks``."""
    start: list[str] = []  # of the line that is still open at the end of the last piece
    held = 0  # its characters
    for text in texts:
        if "\n" not in text:
            if held <= MAX_LINE_CHARS:
                start.append(text)
                held += len(text)
            continue
        lines = text.split("\n")
        if start:
            first = "".join(start) + lines[0] if held <= MAX_LINE_CHARS else "".join(start)
            lines[0] = first
            start, held = [], 0
        rest = lines.pop()
        if rest:
            start, held = [rest], len(rest)
        if "\r" in text or "\r" in lines[0]:
            lines = [line.rstrip("\r") for line in lines]
        if len(lines[0]) > MAX_LINE_CHARS or len(text) > MAX_LINE_CHARS:
            lines = [_too_long(line) if len(line) > MAX_LINE_CHARS else line for line in lines]
        yield lines
    if start:
        last = "".join(start).rstrip("\r")
        yield [_too_long(last) if held > MAX_LINE_CHARS else last]


class _TooLong(str):
    """Stands for a line longer than ``MAX_LINE_CHARS``: its start, after a ``\n`` that no
    line holds, so neither the run parser nor the per-line fast parser takes it for a line."""

    __slots__ = ()


def _too_long(line: str) -> str:
    return _TooLong("\n" + line[:_TOO_LONG_SHOWN])


class _LineFeed:
    """The numbered physical lines of the input, taken in slices or one by one (a string
    running over several lines takes the lines it needs from here)."""

    def __init__(self, pieces: Iterator[list[str]]) -> None:
        self._pieces = pieces
        self._lines: list[str] = []
        self._at = 0
        self._before = 0  # lines before ``_lines[0]``

    def _refill(self) -> bool:
        for piece in self._pieces:
            if piece:
                self._before += len(self._lines)
                self._lines, self._at = piece, 0
                return True
        return False

    def take(self, count: int) -> tuple[int, list[str]] | None:
        """Up to ``count`` lines (fewer at the end of a piece) and the number of the first."""
        if self._at >= len(self._lines) and not self._refill():
            return None
        start = self._at
        self._at = min(start + count, len(self._lines))
        return self._before + start + 1, self._lines[start : self._at]

    def give_back(self, count: int) -> None:
        """Return the last ``count`` lines taken by ``take``."""
        self._at -= count

    def next_line(self) -> tuple[int, str] | None:
        if self._at >= len(self._lines) and not self._refill():
            return None
        self._at += 1
        return self._before + self._at, self._lines[self._at - 1]


def _parsed_blocks(
    pieces: Iterator[list[str]], unit: str, now: int, as_row: bool
) -> Iterator[RowBlock]:
    """The parse of every line, in blocks. With ``as_row``, stretches of one line shape become
    ``RowRun``s; otherwise the common line (no escape, no quote, ``measurement,tags fields
    timestamp`` with single spaces) is parsed by ``_fast_parser``; anything else goes through
    ``_parse``, which alone decides errors."""
    fast = _fast_parser(unit, as_row)
    feed = _LineFeed(pieces)
    pushed_back: deque[tuple[int, str]] = deque()
    block: RowBlock = []
    add = block.append
    in_block = 0  # lines ``block`` stands for
    size = MAX_RUN
    # after runs failed even at ``MIN_RUN`` (lines of mixed shapes), the next lines go line by
    # line, more of them after each failure, so a file of mixed lines pays little for trying
    failures = 0
    next_try = 1  # the line from which runs are tried again
    numbered: Iterator[tuple[int, str]] = iter(())

    def next_line() -> tuple[int, str] | None:
        if pushed_back:
            return pushed_back.popleft()
        return next(numbered, None) or feed.next_line()

    try:
        while (taken := feed.take(size)) is not None:
            first, lines = taken
            if (
                as_row
                and first >= next_try
                and len(lines) >= MIN_RUN
                and fast(lines[0], first) is not None
            ):
                shape = shape_of(lines[0])
                mixed = size < MAX_RUN  # a run failed lately
                run = None if shape is None else parse_run(lines, shape, unit, first, mixed)
                if run is not None:
                    add(run)
                    in_block += len(lines)
                    size = min(2 * size, MAX_RUN)
                    failures = 0
                    if in_block >= LINES_PER_BLOCK:
                        yield block
                        block = []
                        add = block.append
                        in_block = 0
                    continue
                if size > MIN_RUN:
                    feed.give_back(len(lines))
                    size //= 2
                    continue
                failures = min(failures + 1, _BACKOFF_STEPS)
                next_try = first + (MIN_RUN << failures)
            numbered = enumerate(lines, first)
            for number, text in numbered:
                in_block += 1
                point = fast(text, number)
                if point is not None:
                    add(point)
                    continue
                pushed_back.append((number, text))
                while pushed_back:
                    number, text = pushed_back.popleft()
                    stripped = text.lstrip(" \t")
                    if not stripped or stripped.startswith("#"):
                        continue
                    if type(text) is _TooLong:
                        add(LineError(number, text[1:] + "...", _TOO_LONG))
                        continue
                    try:
                        add(_parse(text, unit, now, number))
                    except LineProtocolError as error:
                        add(LineError(number, text, str(error)))
                    except _Incomplete:
                        add(_continue_string(text, number, unit, now, next_line, pushed_back))
            if in_block >= LINES_PER_BLOCK:
                yield block
                block = []
                add = block.append
                in_block = 0
    except Exception:
        # the source failed part-way (a truncated download, say): the lines before still count
        if block:
            yield block
        raise
    if block:
        yield block


#: Line heads (measurement and tags) ``_fast_parser`` remembers; past it, it starts afresh.
_HEADS_CACHED = 4096


def _fast_parser(unit: str, as_row: bool) -> Callable[[str, int], FastRow | Point | None]:
    """A parser of the common line for ``unit``, making a ``Point`` or (``as_row``) a
    ``FastRow``; it returns ``None`` for any other line (a blank line, a comment, an error, a
    field named like a tag or twice...), which the general path then reads, so it decides
    nothing the scanner would decide differently. Written for speed: the local engine's writes
    and every replay go through it, one call per line."""
    scale = 1 if unit == "auto" else NS_PER_UNIT[unit]
    auto = unit == "auto"
    # measurement and tags of the heads seen (a file has few series): parsed once each
    heads: dict[str, tuple[str, dict[str, str]]] = {}

    def parse_head(head: str) -> tuple[str, dict[str, str]] | None:
        names = head.split(",")
        tags: dict[str, str] = {}
        for pair in names[1:]:
            key, sep, tag_value = pair.partition("=")
            if not key or not sep or not tag_value or key in tags or key == "time":
                return None
            tags[key] = tag_value
        if len(heads) >= _HEADS_CACHED:
            heads.clear()
        parsed = heads[head] = (names[0], tags)
        return parsed

    def fast(text: str, number: int) -> FastRow | Point | None:
        if text[:1] <= " " or text[0] in "#," or "\\" in text or '"' in text:
            return None
        parts = text.split(" ")
        if len(parts) != 3:
            return None
        head, body, stamp = parts
        if not (stamp.isdigit() and stamp.isascii()):
            return None
        known = heads.get(head) or parse_head(head)
        if known is None:
            return None
        measurement, tags = known
        # a row starts as the tags, so a field named like a tag is seen as taken, like a
        # repeated field name: both are left to the general path
        values: dict[str, FieldValue] = dict(tags) if as_row else {}
        for pair in body.split(","):
            key, sep, raw = pair.partition("=")
            if not key or not sep or key in values or key == "time":
                return None
            digits = raw[1:] if raw[:1] == "-" else raw
            if digits.replace(".", "", 1).isdigit() and digits.isascii():
                values[key] = float(raw)  # plain decimal: 1.5, -2, .5, 3.
                continue
            value = _unquoted_value(raw) if raw else None
            if value is None:
                return None
            # the engine's rows hold plain ints (``to_engine_row``)
            values[key] = int(value) if as_row and type(value) is UInt64 else value
        if not as_row and not tags.keys().isdisjoint(values):
            return None
        written = int(stamp)
        if auto:
            if written < 5_000_000_000:
                ns = written * 1_000_000_000
            elif written < 5_000_000_000_000:
                ns = written * 1_000_000
            elif written < 5_000_000_000_000_000:
                ns = written * 1_000
            else:
                ns = written
        else:
            ns = written * scale
        if ns > INT64_MAX:
            return None  # the general path says why
        if as_row:
            values["time"] = ns
            return measurement, tags, values, number
        return Point(measurement, tags.copy(), values, ns, number, text)  # each owns its tags

    return fast


def _continue_string(
    first: str,
    number: int,
    unit: str,
    now: int,
    next_line: Callable[[], tuple[int, str] | None],
    pushed_back: deque[tuple[int, str]],
) -> Point | LineError:
    """Join following physical lines to a line whose quoted string contains a newline.

    Linear in the lines taken: a line is scanned for the closing quote once (``_CLOSES``, the
    string scanner's own rule, since a continuation line always starts inside the string), and
    the parse resumes at the open string instead of starting the joined text again. If the
    string never closes, the first line is reported and only the lines after the last close are
    read again as lines of their own: such a line cannot open a string by itself (a line that
    opens one has a quote that would have closed it), so none is read more than twice.
    """
    scanner = _Scanner(first.strip(" \t"))
    try:
        return _finished(scanner.parse(unit, now), first, number)
    except LineProtocolError as error:  # pragma: no cover - _parse raised _Incomplete before
        return LineError(number, first, str(error))
    except _Incomplete:
        pass
    parts = [scanner.text[scanner.string_start :]]  # the open string and what follows
    taken: list[tuple[int, str]] = []
    closed_at = 0  # how many of ``taken`` belong to strings that closed
    while len(taken) < MAX_CONTINUATION_LINES and (item := next_line()) is not None:
        if type(item[1]) is _TooLong:  # no string runs on through it: it is reported itself
            pushed_back.appendleft(item)
            break
        taken.append(item)
        parts.append(item[1])
        if not _CLOSES.match(item[1]):
            continue  # still inside the string at the end of this line
        closed_at = len(taken)
        try:
            point = scanner.resume("\n".join(parts).rstrip(" \t"), unit, now)
        except LineProtocolError as error:
            return LineError(number, _original(first, taken), str(error))
        except _Incomplete:  # another string opened after the one that closed
            parts = [scanner.text[scanner.string_start :]]
            continue
        return _finished(point, _original(first, taken), number)
    pushed_back.extendleft(reversed(taken[closed_at:]))
    return LineError(number, _original(first, taken[:closed_at]), _UNTERMINATED)


def _original(first: str, taken: list[tuple[int, str]]) -> str:
    return "\n".join([first, *(text for _, text in taken)])


def _finished(point: Point, line: str, number: int) -> Point:
    point.line_number = number
    point.line = line
    return point


#: From the start of a line inside a quoted string: does the string close on this line?
#: ``\\`` escapes the next character in pairs (only ``\"`` and ``\\`` mean anything, but pairing
#: any character gives the same answer), so an unescaped quote is one not paired with a ``\\``.
_CLOSES = re.compile(r'(?:[^"\\]|\\.)*"')
_UNTERMINATED = 'unterminated string field value: a string must end with an unescaped "'


def to_engine_row(point: Point) -> dict[str, FieldValue]:
    """The Processing Engine's row shape: tags and fields as keys plus ``time`` in ns."""
    row: dict[str, FieldValue] = {**point.tags, **point.fields, "time": point.time_ns}
    for key, value in point.fields.items():
        if type(value) is UInt64:
            row[key] = int(value)
    return row


# -- parsing ---------------------------------------------------------------------------------------


def _parse(line: str, unit: str, now: int, number: int) -> Point:
    text = line.strip(" \t")
    point = None
    if "\\" not in text and '"' not in text:
        point = _parse_fast(text, unit, now)
    if point is None:
        point = _Scanner(text).parse(unit, now)
    point.line_number = number
    point.line = line
    return point


def _parse_fast(text: str, unit: str, now: int) -> Point | None:
    """Parse a line without escapes or strings; ``None`` means "let the scanner decide"."""
    parts = text.split(" ")
    if len(parts) not in (2, 3):
        return None
    head = parts[0].split(",")
    measurement = head[0]
    if not measurement:
        return None
    tags: dict[str, str] = {}
    for pair in head[1:]:
        key, sep, tag_value = pair.partition("=")
        if not key or not sep or not tag_value or key in tags:
            return None
        tags[key] = tag_value
    fields: dict[str, FieldValue] = {}
    for pair in parts[1].split(","):
        key, sep, raw = pair.partition("=")
        if not key or not sep or not raw:
            return None
        value = _unquoted_value(raw)
        if value is None:
            return None
        fields[key] = value
    if "time" in tags or "time" in fields or not tags.keys().isdisjoint(fields):
        return None
    if len(parts) == 2:
        return Point(measurement, tags, fields, now)
    stamp = parts[2]
    if not _SIGNED.fullmatch(stamp):
        return None
    try:
        return Point(measurement, tags, fields, timestamp_to_ns(int(stamp), unit))
    except ValueError:
        return None


def _unquoted_value(raw: str) -> FieldValue | None:
    """Type a field value written without quotes; ``None`` if it is not valid."""
    last = raw[-1]
    if last == "i":
        digits = raw[:-1]
        if _SIGNED.fullmatch(digits):
            number = int(digits)
            return number if INT64_MIN <= number <= INT64_MAX else None
        return None
    if last == "u":
        digits = raw[:-1]
        if _UNSIGNED.fullmatch(digits):
            number = int(digits)
            return UInt64(number) if number <= UINT64_MAX else None
        return None
    if raw in TRUE_SPELLINGS:
        return True
    if raw in FALSE_SPELLINGS:
        return False
    if _FLOAT.fullmatch(raw):
        return float(raw)
    return None


def _explain_value(key: str, raw: str) -> str:
    if raw[-1] in "iu" and _SIGNED.fullmatch(raw[:-1]):
        kind = "integer (i)" if raw[-1] == "i" else "unsigned integer (u)"
        limits = f"{INT64_MIN}..{INT64_MAX}" if raw[-1] == "i" else f"0..{UINT64_MAX}"
        return f"field {key!r}: {kind} value {raw} is out of range {limits}"
    return (
        f"field {key!r} has invalid value {raw!r}: expected a float (1.5, -2e3), an integer "
        '(5i), an unsigned integer (5u), a boolean (t, true, f, false) or a "quoted string"'
    )


class _Scanner:
    """Character-level parser for lines with escapes and quoted strings."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # what ``resume`` needs after a string field ran past the end of the text
        self.measurement = ""
        self.tags: dict[str, str] = {}
        self.fields: dict[str, FieldValue] = {}
        self.key = ""
        self.string_start = 0

    def fail(self, message: str) -> LineProtocolError:
        return LineProtocolError(message)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def read_name(self, stops: str, escapable: frozenset[str]) -> str:
        """Read up to an unescaped stop character; ``\\`` escapes only ``escapable``."""
        text, out = self.text, []
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in escapable:
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if char in stops:
                break
            out.append(char)
            self.pos += 1
        return "".join(out)

    def skip_spaces(self) -> int:
        start = self.pos
        while self.peek() == " ":
            self.pos += 1
        return self.pos - start

    def parse(self, unit: str, now: int) -> Point:
        measurement = self.read_name(", ", _MEASUREMENT_ESCAPABLE)
        if not measurement:
            raise self.fail("missing measurement name at the start of the line")
        self.measurement = measurement
        self.tags = self.parse_tags(measurement)
        if self.skip_spaces() == 0 or self.pos == len(self.text):
            raise self.fail(
                f"missing fields: expected a space and then field=value after {measurement!r}"
            )
        self.parse_fields()
        return self.finish(unit, now)

    def resume(self, text: str, unit: str, now: int) -> Point:
        """Go on after ``_Incomplete``: ``text`` is the open string field (from its quote) with
        the following lines joined; what came before the string is kept."""
        self.text = text
        self.pos = 0
        self.fields[self.key] = self.parse_string()
        if self.peek() == ",":
            self.pos += 1
            self.parse_fields()
        return self.finish(unit, now)

    def finish(self, unit: str, now: int) -> Point:
        tags, fields = self.tags, self.fields
        if "time" in tags or "time" in fields:
            raise self.fail("'time' cannot be used as a tag or field key: it is the timestamp")
        shared = sorted(tags.keys() & fields.keys())
        if shared:
            raise self.fail(f"{shared[0]!r} is used as both a tag and a field in this line")
        return Point(self.measurement, tags, fields, self.parse_time(unit, now))

    def parse_tags(self, measurement: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.pos += 1
            key = self.read_name("=, ", _KEY_ESCAPABLE)
            if not key:
                raise self.fail(f"empty tag key in the tag set of {measurement!r}")
            if self.peek() != "=":
                raise self.fail(f"tag {key!r} has no value: expected {key}=value")
            self.pos += 1
            value = self.read_name(", ", _KEY_ESCAPABLE)
            if not value:
                raise self.fail(f"tag {key!r} has an empty value")
            if key in tags:
                raise self.fail(f"tag {key!r} appears more than once")
            tags[key] = value
        return tags

    def parse_fields(self) -> None:
        fields = self.fields
        while True:
            key = self.read_name("=, ", _KEY_ESCAPABLE)
            if not key:
                raise self.fail("empty field key: expected field=value")
            if self.peek() != "=":
                raise self.fail(f"field {key!r} has no value: expected {key}=value")
            self.pos += 1
            self.key = key
            fields[key] = self.parse_field_value(key)
            if self.peek() != ",":
                return
            self.pos += 1

    def parse_field_value(self, key: str) -> FieldValue:
        if self.peek() == '"':
            return self.parse_string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", ":
            self.pos += 1
        raw = self.text[start : self.pos]
        if not raw:
            raise self.fail(f"field {key!r} has no value: expected {key}=value")
        value = _unquoted_value(raw)
        if value is None:
            raise self.fail(_explain_value(key, raw))
        return value

    def parse_string(self) -> str:
        text, out = self.text, []
        self.string_start = self.pos
        self.pos += 1
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in '"\\':
                out.append(text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise _Incomplete

    def parse_time(self, unit: str, now: int) -> int:
        if self.pos < len(self.text) and self.text[self.pos] not in " ":
            raise self.fail(
                f"unexpected {self.text[self.pos :]!r} after the fields: "
                "separate fields with commas and the timestamp with a space"
            )
        self.skip_spaces()
        stamp = self.text[self.pos :]
        if not stamp:
            return now
        if " " in stamp:
            raise self.fail(f"unexpected text after the timestamp: {stamp!r}")
        if not _SIGNED.fullmatch(stamp):
            raise self.fail(f"invalid timestamp {stamp!r}: expected an integer")
        try:
            return timestamp_to_ns(int(stamp), unit)
        except ValueError as error:
            raise self.fail(str(error)) from None
