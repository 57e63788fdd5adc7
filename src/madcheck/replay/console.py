"""What a replay tells the user in the terminal: bad lines, the plugin's warnings, progress, and
the tables of results, as plain text.

Every value shown comes from the data or the command line, so nothing here interprets markup:
text is printed as it is, with control characters (an ANSI escape in a tag value would recolour
or clear the user's terminal) shown as ``\\x1b``-style escapes. Messages go to stderr, results
to stdout, so stdout can be redirected. Repeated messages are capped: a file with a million bad
lines must not print a million lines.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from madcheck.engine.api import LogRecord

#: ``[mad_check 1a2b3c] `` opens every plugin log line; it differs per call.
_CALL_PREFIX = re.compile(r"^\[[^\]]*\] ")
#: C0 and C1 control characters (tab and newline included: a cell is one line) and DEL.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
#: Seconds between two redraws of the progress line.
PROGRESS_EVERY_S = 0.25


def shown(text: str) -> str:
    """``text`` safe to print on a terminal: control characters written as escapes."""
    return text.translate(_CONTROLS)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 alert``, ``2 alerts``, ``1,000 alerts``; ``nouns`` for another plural (series)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {nouns or noun + 's'}"


def table_text(
    title: str, headings: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int
) -> str:
    """A plain-text table: columns from ``numeric_from`` on are right-aligned numbers."""
    cells = [[shown(cell) for cell in row] for row in rows]
    widths = [len(heading) for heading in headings]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return " │ ".join(
            value.rjust(width) if column >= numeric_from else value.ljust(width)
            for column, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "─┼─".join("─" * width for width in widths)
    return "\n".join([title, line(headings), rule, *(line(row) for row in cells)])


class ReplayConsole:
    """Messages for the user on ``stream`` (stderr), each kind capped at ``limit`` lines."""

    def __init__(self, limit: int = 20, progress: bool = True, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.limit = limit
        isatty = getattr(self.stream, "isatty", None)
        self.show_progress = progress and bool(isatty and isatty())
        self._bad_lines_seen = 0
        self._messages_shown: set[str] = set()
        self._messages_hidden = 0
        #: The plugin's own description of its configuration (secrets masked by the plugin).
        self.configuration = ""

    def say(self, text: str) -> None:
        print(shown(text), file=self.stream, flush=True)

    def bad_line(self, source: str, line_number: int, message: str) -> None:
        self._bad_lines_seen += 1
        if self._bad_lines_seen <= self.limit:
            self.say(f"{source}:{line_number}: skipped: {message}")

    def plugin_log(self, record: LogRecord) -> None:
        """The plugin's warnings and errors (once each); its configuration line is kept."""
        text = _CALL_PREFIX.sub("", record.log_text)
        if record.log_level == "INFO":
            if text.startswith("configuration loaded") and not self.configuration:
                self.configuration = text
            return
        if text in self._messages_shown:
            return
        if len(self._messages_shown) >= self.limit:
            self._messages_hidden += 1
            return
        self._messages_shown.add(text)
        self.say(f"plugin {record.log_level}: {text}")

    def finish(self, bad_lines: int) -> None:
        """Say how much was not shown."""
        if bad_lines > self.limit:
            self.say(f"{plural(bad_lines, 'bad line')} skipped in all (first {self.limit} shown)")
        if self._messages_hidden:
            self.say(f"{self._messages_hidden:,} more plugin warnings or errors not shown")

    def note(self, text: str) -> None:
        self.say(text)

    @contextmanager
    def progress(self, total_bytes: int, label: str) -> Iterator[Callable[[int], None]]:
        """A one-line progress display by bytes read (terminals only); yields ``update``."""
        if not self.show_progress:
            yield lambda done: None
            return
        started = time.monotonic()
        last = [0.0]

        def update(done: int) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
            share = done / total_bytes if total_bytes else 1.0
            self.stream.write(
                f"\r{label} {share:4.0%}  {done / 1e6:,.1f} of {total_bytes / 1e6:,.1f} MB"
                f"  {now - started:,.0f} s "
            )
            self.stream.flush()

        try:
            yield update
        finally:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
