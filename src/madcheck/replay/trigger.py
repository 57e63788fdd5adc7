"""One replayed trigger: the plugin file, its arguments and its own ``influxdb3_local``.

Each call executes the plugin file the way the engine does (``load_entry_point``: fresh globals
every call), so a replay runs the code that will be deployed, state kept in the trigger cache and
all. What the call wrote (its alert history) and logged is taken from the engine object after.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from madcheck.detect.detector import VerdictObserver
from madcheck.engine.api import EngineAPI, LogRecord
from madcheck.engine.catalog import SchemaQueries
from madcheck.engine.loader import load_entry_point
from madcheck.replay.alerts import AlertRecord, parse_history_line

DATABASE = "replay"
#: Where the MAD plugin keeps its state in the trigger cache (madcheck.plugin.writes).
STATE_KEY = "madcheck.mad_check.state"
LogSink = Callable[[LogRecord], None]


class ReplayTrigger:
    """Calls ``process_writes`` of ``plugin`` with one measurement's batches."""

    def __init__(
        self,
        plugin: Path,
        arguments: dict[str, str],
        measurement: str,
        catalog: SchemaQueries,
        on_log: LogSink,
        observer: VerdictObserver | None = None,
    ) -> None:
        self.plugin = plugin
        self.arguments = arguments
        self.measurement = measurement
        self.alerts_table = arguments["alerts_table"]
        self.engine = EngineAPI(DATABASE, trigger_name="replay", query_handler=catalog)
        self._on_log = on_log
        self._observer = observer
        if observer is not None:
            # an empty call makes the plugin build its state (and detector) to hang it on
            self.call([])

    def call(self, rows: list[dict[str, Any]]) -> list[AlertRecord]:
        """One flush: the plugin sees ``rows`` as one table batch; returns the alerts recorded."""
        # the engine executes the file afresh for every call; so does the replay
        process_writes = load_entry_point(self.plugin, "process_writes")
        process_writes(
            self.engine, [{"table_name": self.measurement, "rows": rows}], dict(self.arguments)
        )
        if self._observer is not None:
            self._attach(self._observer)
        for log_record in self.engine.take_logs():
            self._on_log(log_record)
        alerts = []
        for write in self.engine.take_writes():
            alert = parse_history_line(write.line, self.alerts_table)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _attach(self, observer: VerdictObserver) -> None:
        state = self.engine.cache.get(STATE_KEY)
        detector = getattr(state, "detector", None)
        if detector is not None and detector.observer is not observer:
            detector.observer = observer
