"""``madcheck test wal_plugin``: run a data-writes plugin once on some line protocol.

The lines are written to a throw-away database first, so the plugin's own queries (``SHOW
TABLES``, ``information_schema.columns``) see exactly the tables the test data defines, as they
would on a server that had just received it. The result has the shape ``influxdb3 test
wal_plugin`` prints.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point
from madcheck.engine.processing import group_table_batches
from madcheck.engine.storage import Storage
from madcheck.plugin.delivery import finish_delivery

#: longest wait for the plugin's first delivery attempt (the notifier's timeouts bound it)
DELIVERY_WAIT_S = 60.0


def run_wal_plugin(
    plugin_path: Path,
    line_protocol: str,
    arguments: dict[str, str] | None,
    database: str,
) -> dict[str, Any]:
    """Run ``process_writes`` once; return ``{"log_lines", "database_writes", "errors"}``."""
    errors: list[str] = []
    database_writes: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="madcheck-test-") as scratch:
        storage = Storage(Path(scratch))
        try:
            written = storage.write_lp(database, line_protocol, precision="auto")
            errors.extend(
                f"line {e.line_number}: {e.error_message}: {e.original_line}"
                for e in written.errors
            )
            api = EngineAPI(
                database=database,
                trigger_name="test_trigger",
                query_handler=lambda sql, params, db: storage.query(db, sql, params),
            )
            try:
                function = load_entry_point(plugin_path, "process_writes")
                function(api, group_table_batches(written.rows), arguments or None)
                # the MAD plugin posts alerts from a background sender; this one-shot run has
                # no next call to log the outcome, so wait for its first try and log it here
                finish_delivery(api, DELIVERY_WAIT_S)
            except (Exception, SystemExit) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            for write in api.take_writes():
                database_writes.setdefault(write.database, []).append(write.line)
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
