"""``madcheck test wal_plugin`` and ``test schedule_plugin``: run a plugin once, write nothing.

As in InfluxDB 3's dry runs, the plugin's own writes are collected and checked, never applied,
and the result has the shape ``influxdb3 test`` prints: ``log_lines``, ``database_writes``
(database -> lines) and ``errors`` (plus ``trigger_time`` for a schedule). The run happens here,
in this interpreter, on a scratch database thrown away afterwards: the test lines are written to
it (so the plugin's ``SHOW TABLES`` and ``information_schema.columns`` see the tables they
define) and never reach a server. What the plugin itself sends over the network is up to its
arguments: the MAD check posts alerts to the notifier its arguments name, nowhere else.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point
from madcheck.engine.processing import group_table_batches
from madcheck.engine.schedule import call_time
from madcheck.engine.storage import Storage
from madcheck.plugin.delivery import finish_delivery

#: longest wait for the plugin's first delivery attempt (the notifier's timeouts bound it)
DELIVERY_WAIT_S = 60.0

TEST_TRIGGER_NAME = "test_trigger"


def run_wal_plugin(
    plugin_path: Path,
    line_protocol: str,
    arguments: dict[str, str] | None,
    database: str,
) -> dict[str, Any]:
    """Call ``process_writes`` once with ``line_protocol`` as one flush."""

    def call(storage: Storage, api: EngineAPI, errors: list[str]) -> None:
        rows = _write_test_lines(storage, database, line_protocol, errors)
        function = load_entry_point(plugin_path, "process_writes")
        api.info("starting execution of wal plugin.")
        function(api, group_table_batches(rows), arguments or None)

    return _dry_run(database, call)


def run_schedule_plugin(
    plugin_path: Path,
    trigger_time: datetime,
    arguments: dict[str, str] | None,
    database: str,
    line_protocol: str | None = None,
) -> dict[str, Any]:
    """Call ``process_scheduled_call(influxdb3_local, call_time, args)`` once for the UTC
    ``trigger_time``, ``call_time`` built as the engine builds it (``schedule.call_time``);
    ``line_protocol``, if given, is written to the scratch database first."""
    scheduled_ns = int(trigger_time.timestamp()) * 1_000_000_000

    def call(storage: Storage, api: EngineAPI, errors: list[str]) -> None:
        if line_protocol is not None:
            _write_test_lines(storage, database, line_protocol, errors)
        function = load_entry_point(plugin_path, "process_scheduled_call")
        api.info(f"starting execution with scheduled time {trigger_time:%Y-%m-%d %H:%M:%S} UTC")
        function(api, call_time(scheduled_ns), arguments or None)

    result = _dry_run(database, call)
    return {"trigger_time": trigger_time.strftime("%Y-%m-%dT%H:%M:%SZ"), **result}


def _write_test_lines(storage: Storage, database: str, text: str, errors: list[str]) -> Any:
    """Write the test lines to the scratch database; their rows (bad lines are errors)."""
    written = storage.write_lp(database, text, precision="auto")
    errors.extend(
        f"line {e.line_number}: {e.error_message}: {e.original_line}" for e in written.errors
    )
    return written.rows


def _dry_run(
    database: str, call: Callable[[Storage, EngineAPI, list[str]], None]
) -> dict[str, Any]:
    errors: list[str] = []
    database_writes: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="madcheck-test-") as scratch:
        storage = Storage(Path(scratch))
        try:
            api = EngineAPI(
                database=database,
                trigger_name=TEST_TRIGGER_NAME,
                query_handler=lambda sql, params, db: storage.query(db, sql, params),
            )
            started = time.perf_counter()
            try:
                call(storage, api, errors)
                # the MAD plugin posts alerts (of either entry point) from a background
                # sender; this one-shot run has no next call to log the outcome, so wait for
                # its first try and log it here
                finish_delivery(api, DELIVERY_WAIT_S)
                api.info(f"finished execution in {_duration(time.perf_counter() - started)}")
            except (Exception, SystemExit) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            for write in api.take_writes():
                database_writes.setdefault(write.database, []).append(write.line)
                # validated on the scratch copy only: a dry run applies nothing
                result = storage.write_lp(write.database, write.line, precision="ns")
                errors.extend(
                    f"plugin wrote an invalid line to {write.database}: {e.error_message}: "
                    f"{e.original_line}"
                    for e in result.errors
                )
        finally:
            storage.close()
    return {
        "log_lines": [f"{record.log_level}: {record.log_text}" for record in api.logs],
        "database_writes": database_writes,
        "errors": errors,
    }


def _duration(seconds: float) -> str:
    """``1s 250ms 3us``, the way the engine's log line spells an execution time."""
    nanoseconds = round(seconds * 1e9)
    parts = []
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)):
        amount, nanoseconds = divmod(nanoseconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts) or "0s"
