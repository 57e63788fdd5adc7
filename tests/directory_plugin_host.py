"""Run the madcheck directory plugin the way InfluxDB 3 does, in a Python without madcheck.

Started by ``tests/test_directory_plugin.py`` as ``python -I -S THIS PLUGIN_DIR SITE WEBHOOK``:
no site-packages, only the standard library and ``SITE`` (a folder holding ``requests`` and its
dependencies). Written with the standard library only, as the engine's side of the bargain:

* load ``PLUGIN_DIR/madcheck`` exactly as ``load_function_from_module`` in InfluxDB 3's
  ``influxdb3_py_api/src/system_py.rs`` does: the parent first on ``sys.path``, import the module
  named after the folder, pop the entry again, take the entry point off the module;
* serve ``POST /api/v3/engine/notify`` on 127.0.0.1 by calling ``process_request``, as a request
  trigger does; the port reaches the MAD check as ``port_override``;
* call ``process_writes`` with a stream whose tail is an outlier run, with an ``influxdb3_local``
  that answers the schema queries, keeps a cache and records log lines;
* call ``process_scheduled_call`` (another trigger, its own cache) with ``missing_after=5m`` and a
  ``call_time`` ten minutes after the table's last point, built as the engine builds it;
* wait (bounded) for the notifier to have answered each, then print one JSON report on stdout.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import queue
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WAIT_S = 30.0
#: the last point of host a in table cpu (and the first of the stream process_writes gets)
BASE_NS = 1_700_000_000 * 10**9


class Cache:
    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None, use_global: Any = None) -> Any:
        return self._values.get(key, default)

    def put(self, key: str, value: Any, ttl: Any = None, use_global: Any = None) -> None:
        self._values[key] = value

    def delete(self, key: str, use_global: Any = None) -> bool:
        return self._values.pop(key, None) is not None


class Local:
    """The slice of ``influxdb3_local`` the plugins use, for a database with one table, cpu."""

    def __init__(self) -> None:
        self.logs: list[str] = []
        self.cache = Cache()
        self.writes: list[Any] = []

    def info(self, *args: Any) -> None:
        self.logs.append("INFO: " + " ".join(map(str, args)))

    def warn(self, *args: Any) -> None:
        self.logs.append("WARN: " + " ".join(map(str, args)))

    def error(self, *args: Any) -> None:
        self.logs.append("ERROR: " + " ".join(map(str, args)))

    def query(self, sql: str, args: Any = None, database: Any = None) -> list[dict[str, Any]]:
        if sql.strip().upper().startswith("SHOW TABLES"):
            return [{"table_catalog": "public", "table_schema": "iox", "table_name": "cpu",
                     "table_type": "BASE TABLE"}]  # fmt: skip
        if "information_schema.columns" in sql:
            return [
                {"column_name": "host", "data_type": "Dictionary(Int32, Utf8)"},
                {"column_name": "temp", "data_type": "Float64"},
                {"column_name": "time", "data_type": "Timestamp(Nanosecond, None)"},
            ]
        if 'MAX("time")' in sql:  # the missing-data query: a timestamp comes back as int ns
            return [{"host": "a", "last_seen": BASE_NS}]
        return []

    def write(self, line: Any) -> None:
        self.writes.append(line)

    def write_to_db(self, database: str, line: Any) -> None:
        self.writes.append(line)


def load_function_from_module(plugin_root: Path, function_name: str) -> Any:
    """What the engine does for a trigger created with ``--path <folder>``."""
    sys.path.insert(0, str(plugin_root.parent))
    try:
        try:
            module = importlib.import_module(plugin_root.name)
        except ModuleNotFoundError as error:
            if error.name != plugin_root.name:
                raise
            importlib.invalidate_caches()
            module = importlib.import_module(plugin_root.name)
    finally:
        sys.path.pop(0)
    return getattr(module, function_name)


def main() -> None:
    plugin_dir, site, webhook = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    sys.path.append(site)
    report: dict[str, Any] = {
        "installed_before_loading": importlib.util.find_spec("madcheck") is not None,
        "light_import": None,
    }
    # What `influxdb3 test wal_plugin madcheck` does with a directory: run __init__.py alone.
    alone = Local()
    namespace: dict[str, Any] = {}
    exec((plugin_dir / "madcheck" / "__init__.py").read_text(), namespace)
    namespace["process_writes"](alone, [], None)
    report["run_alone_logs"] = alone.logs

    process_writes = load_function_from_module(plugin_dir / "madcheck", "process_writes")
    report["madcheck_file"] = sys.modules["madcheck"].__file__
    report["path_entry_left"] = str(plugin_dir) in sys.path
    report["light_import"] = sorted(
        name for name in sys.modules if name.split(".")[0] in ("requests", "urllib3")
        or name.startswith("madcheck.")
    )  # fmt: skip
    process_request = load_function_from_module(plugin_dir / "madcheck", "process_request")
    process_scheduled_call = load_function_from_module(
        plugin_dir / "madcheck", "process_scheduled_call"
    )

    notifier = Local()
    answered: queue.Queue[int] = queue.Queue()

    class Notify(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {
                k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"
            }
            answer, status = process_request(notifier, {}, headers, body, None)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            answered.put(status)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Notify)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mad = Local()
    values = [20.0 + (i % 5) * 0.5 for i in range(25)] + [90.0] * 6
    rows = [{"host": "a", "temp": v, "time": BASE_NS + i * 10**9} for i, v in enumerate(values)]
    arguments = {
        "measurement": "cpu",
        "mad_thresholds": "temp:2.5:20:5",
        "senders": "http",
        "http_webhook_url": webhook,
        "port_override": str(server.server_address[1]),
        "config_file_path": "mad.toml",
    }
    process_writes(mad, [{"table_name": "cpu", "rows": rows}], arguments)
    report["notifier_answered"] = _answer(answered)

    scheduled = Local()
    call_time = datetime.fromtimestamp(BASE_NS // 10**9 + 600)  # naive local, as the engine
    process_scheduled_call(scheduled, call_time, {**arguments, "missing_after": "5m"})
    report["scheduled_answered"] = _answer(answered)
    server.shutdown()
    report["mad_logs"] = mad.logs
    report["scheduled_logs"] = scheduled.logs
    report["scheduled_history"] = [line.build() for line in scheduled.writes]
    report["notifier_logs"] = notifier.logs
    third_party = {  # modules loaded from a file that the standard library does not name
        name.split(".")[0]
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None)
        and name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith("_")
    }
    report["third_party_modules"] = sorted(third_party)
    print(json.dumps(report))


def _answer(answered: queue.Queue[int]) -> int | None:
    """The status of the notifier's next answer, or None if none came within WAIT_S."""
    try:
        return answered.get(timeout=WAIT_S)
    except queue.Empty:
        return None


if __name__ == "__main__":
    main()
