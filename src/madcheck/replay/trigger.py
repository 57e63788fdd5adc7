"""One replayed trigger: the plugin file, its arguments and its own ``influxdb3_local``.

Each call executes the plugin file the way the engine does (``load_entry_point``: fresh globals
every call), so a replay runs the code that will be deployed, state kept in the trigger cache and
all. What the call wrote (its alert history) and logged is taken from the engine object after.

Time-based noise control (``group_wait``, the storm cap's minute) reads the trigger's outbox
clock, the wall clock in a server. A replay runs hours of data in seconds, so it sets that clock
to the data time of the newest row handed to the plugin: groups and the cap behave as they would
have live, and at the end the clock moves past every wait so that what is still held goes out.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import Any

from madcheck.detect.detector import VerdictObserver
from madcheck.engine.api import EngineAPI, LogRecord
from madcheck.engine.catalog import SchemaQueries
from madcheck.engine.loader import load_entry_point
from madcheck.plugin.delivery import wait_for_sender
from madcheck.replay.alerts import AlertRecord, parse_history_line
from madcheck.replay.capture import CaptureClient

DATABASE = "replay"
#: Where the MAD plugin keeps its state in the trigger cache (madcheck.plugin.writes).
STATE_KEY = "madcheck.mad_check.state"
LogSink = Callable[[LogRecord], None]
_TIME = itemgetter("time")
#: how far past the last row the clock moves when the replay ends: beyond any group_wait
_PAST_EVERY_WAIT_S = 10 * 365 * 86_400.0


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
        capture: CaptureClient | None = None,
    ) -> None:
        self.plugin = plugin
        self.arguments = arguments
        self.measurement = measurement
        self.alerts_table = arguments["alerts_table"]
        self.engine = EngineAPI(DATABASE, trigger_name="replay", query_handler=catalog)
        self._on_log = on_log
        self._observer = observer
        #: takes the notifications in place of the plugin's notifier client, if set
        self.capture = capture
        #: data time (seconds) of the newest row handed to the plugin: the outbox's clock
        self._data_now_s = 0.0
        # an empty call makes the plugin build its state, whose detector and outbox clock the
        # replay hangs its observer and data clock on
        self.call([])

    def call(self, rows: list[dict[str, Any]]) -> list[AlertRecord]:
        """One flush: the plugin sees ``rows`` as one table batch; returns the alerts recorded."""
        if rows:
            self._data_now_s = max(self._data_now_s, max(map(_TIME, rows)) / 1e9)
        # the engine executes the file afresh for every call; so does the replay
        process_writes = load_entry_point(self.plugin, "process_writes")
        process_writes(
            self.engine, [{"table_name": self.measurement, "rows": rows}], dict(self.arguments)
        )
        self._attach()
        for log_record in self.engine.take_logs():
            self._on_log(log_record)
        alerts = []
        for write in self.engine.take_writes():
            alert = parse_history_line(write.line, self.alerts_table)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def finish(self, timeout: float) -> int:
        """Release what noise control still holds (groups waiting, the storm summary), wait for
        the background sender, and return how many notifications the trigger queued."""
        state = self.engine.cache.get(STATE_KEY)
        if state is None:
            return 0
        self._data_now_s += _PAST_EVERY_WAIT_S
        if len(state.outbox):
            state.sender.ensure_running(wake=True)
        wait_for_sender(self.engine, timeout)
        return int(state.outbox.added_total)

    def _clock(self) -> float:
        return self._data_now_s

    def _attach(self) -> None:
        """Hang the observer, the data clock and the capture client on the plugin's state (built
        by the first call, an empty one that queues nothing, so no notification goes out before
        the capture client is in place; rebuilt only if the configuration changed)."""
        state = self.engine.cache.get(STATE_KEY)
        if state is None:
            return
        if state.outbox.clock != self._clock:
            state.outbox.clock = self._clock
        observer = self._observer
        if observer is not None and state.detector.observer is not observer:
            state.detector.observer = observer
        capture = self.capture
        if capture is not None and state.client is not capture:
            state.client = capture
