"""One replayed trigger: the plugin file, its arguments and its own ``influxdb3_local``.

Each call executes the plugin file the way the engine does (``load_entry_point``: fresh globals
every call), so a replay runs the code that will be deployed, state kept in the trigger cache and
all. What the call wrote and logged is taken from the engine object afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI, LogRecord
from madcheck.engine.catalog import SchemaQueries
from madcheck.engine.loader import load_entry_point
from madcheck.replay.alerts import AlertRecord, parse_history_line

DATABASE = "replay"
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
    ) -> None:
        self.plugin = plugin
        self.arguments = arguments
        self.measurement = measurement
        self.alerts_table = arguments["alerts_table"]
        self.engine = EngineAPI(DATABASE, trigger_name="replay", query_handler=catalog)
        self._on_log = on_log

    def call(self, rows: list[dict[str, Any]]) -> list[AlertRecord]:
        """One flush: the plugin sees ``rows`` as one table batch; returns the alerts recorded."""
        process_writes = load_entry_point(self.plugin, "process_writes")
        process_writes(
            self.engine, [{"table_name": self.measurement, "rows": rows}], dict(self.arguments)
        )
        for log_record in self.engine.take_logs():
            self._on_log(log_record)
        alerts = []
        for write in self.engine.take_writes():
            alert = parse_history_line(write.line, self.alerts_table)
            if alert is not None:
                alerts.append(alert)
        return alerts
