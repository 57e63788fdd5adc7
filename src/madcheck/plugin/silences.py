"""Reading the silences table for the MAD trigger: at most once per refresh period, bounded.

The query is plain SQL that DataFusion (InfluxDB 3) and the local engine both run:
``SELECT * FROM "<table>" ORDER BY time DESC LIMIT <n>``. ``*`` rather than named columns,
because a column nobody has written yet (``starts_at``, ``comment``) does not exist and naming it
would fail the query. At most ``MAX_SILENCE_ROWS`` rows, the newest, are read: a table flooded
with rows costs one bounded query per refresh, and the newest rows are the ones that count (the
latest row of an id wins).

The table list (``SHOW TABLES``) is asked first, at the same pace: a missing table is no error,
nobody has silenced anything yet, and the query never fails for it. Any other failure keeps the
silences read last (a flaky query must not un-silence a deploy) and is logged once per refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from madcheck.plugin.calllog import CallLog
from madcheck.plugin.schema import fetch_tables
from madcheck.route.silences import SilenceSet

MAX_SILENCE_ROWS = 10_000


def silences_query(table: str, limit: int = MAX_SILENCE_ROWS) -> str:
    quoted = '"' + table.replace('"', '""') + '"'
    return f"SELECT * FROM {quoted} ORDER BY time DESC LIMIT {int(limit)}"


@dataclass
class SilenceReader:
    """The trigger's view of its silences table, refreshed at most every ``refresh_s``."""

    table: str
    refresh_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    current: SilenceSet = field(default_factory=SilenceSet)
    _read_at: float | None = None
    #: problems already logged, so a broken row is reported once, not every refresh
    _reported: set[str] = field(default_factory=set)
    _said_full: bool = False

    def silences(self, engine: Any, log: CallLog) -> SilenceSet:
        """The silences, re-read from the table when the last read is ``refresh_s`` old."""
        now = self.clock()
        if self._read_at is not None and now - self._read_at < self.refresh_s:
            return self.current
        self._read_at = now
        try:
            if self.table not in fetch_tables(engine):
                self.current = SilenceSet()  # nobody has silenced anything yet
                return self.current
            rows = engine.query(silences_query(self.table))
        except Exception as error:
            log.warn(
                f"could not read silences from {self.table!r} ({type(error).__name__}); "
                f"keeping the {len(self.current.silences)} read before"
            )
            return self.current
        if not isinstance(rows, list):
            return self.current
        self.current = SilenceSet.from_rows(row for row in rows if isinstance(row, dict))
        fresh = [p for p in self.current.problems if p not in self._reported]
        if fresh:
            if len(self._reported) > 1000:
                self._reported.clear()
            self._reported.update(fresh[:100])
            log.warn(
                f"{self.table}: skipped {len(fresh)} silence row(s) that cannot be used: "
                + "; ".join(fresh[:3])
            )
        if len(rows) >= MAX_SILENCE_ROWS and not self._said_full:
            self._said_full = True
            log.warn(
                f"{self.table} has more than {MAX_SILENCE_ROWS} rows: only the newest are read; "
                "delete old silences"
            )
        return self.current
