"""What a replay tells the user while it runs: bad lines, the plugin's warnings, progress.

Everything here goes to stderr, so stdout carries only the results (the summary or the sweep)
and can be redirected. Repeated messages are capped: a file with a million bad lines must not
print a million lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from madcheck.engine.api import LogRecord

#: ``[mad_check 1a2b3c] `` opens every plugin log line; it differs per call.
_CALL_PREFIX = re.compile(r"^\[[^\]]*\] ")


class ReplayConsole:
    """Messages for the user on stderr, each kind capped at ``limit`` lines."""

    def __init__(self, limit: int = 20, progress: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.limit = limit
        self.show_progress = progress and self.console.is_terminal
        self._bad_lines_seen = 0
        self._messages_shown: set[str] = set()
        self._messages_hidden = 0
        #: The plugin's own description of its configuration (secrets masked by the plugin).
        self.configuration = ""

    def bad_line(self, source: str, line_number: int, message: str) -> None:
        self._bad_lines_seen += 1
        if self._bad_lines_seen <= self.limit:
            self.console.print(f"{escape(source)}:{line_number}: skipped: {escape(message)}")

    def plugin_log(self, record: LogRecord) -> None:
        """The plugin's warnings and errors (once each), and its configuration line once."""
        text = _CALL_PREFIX.sub("", record.log_text)
        if record.log_level == "INFO":
            if text.startswith("configuration loaded") and not self.configuration:
                self.configuration = text
                self.console.print(f"plugin: {escape(text)}", style="dim")
            return
        if text in self._messages_shown:
            return
        if len(self._messages_shown) >= self.limit:
            self._messages_hidden += 1
            return
        self._messages_shown.add(text)
        self.console.print(f"plugin {record.log_level}: {escape(text)}", style="yellow")

    def finish(self, bad_lines: int) -> None:
        """Say how much was not shown."""
        if bad_lines > self.limit:
            self.console.print(f"{bad_lines} bad lines skipped in all (first {self.limit} shown)")
        if self._messages_hidden:
            self.console.print(f"{self._messages_hidden} more plugin warnings or errors not shown")

    def note(self, text: str) -> None:
        self.console.print(escape(text))

    @contextmanager
    def progress(self, total_bytes: int, label: str) -> Iterator[Callable[[int], None]]:
        """A progress bar by bytes read; yields ``update(bytes_done)``."""
        if not self.show_progress:
            yield lambda done: None
            return
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        with bar:
            task = bar.add_task(label, total=total_bytes)
            yield lambda done: bar.update(task, completed=done)
