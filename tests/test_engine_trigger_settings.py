"""Over HTTP against ``madcheck serve``: slow triggers slow the writers down, and the trigger
settings of ``create trigger`` (``--run-asynchronous``, ``--error-behavior``) arrive and show."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from tests.engine_harness import ServeProcess, query, run_cli, wait_for

GATED_PLUGIN = """
import os
import time


def process_writes(influxdb3_local, table_batches, args=None):
    influxdb3_local.info("rows=" + str(sum(len(b["rows"]) for b in table_batches)))
    while not os.path.exists(args["gate"]):  # deliberately slow until the test opens the gate
        time.sleep(0.01)
"""


class _Writer(threading.Thread):
    """Writes one line at a time until told to stop; tracks the write in flight."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.done = 0
        self.in_flight_since: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.in_flight_since = time.monotonic()
            response = requests.post(
                f"{self.url}/api/v3/write_lp?db=mydb",
                data=f"cpu usage={self.done} {self.done + 1}",
                timeout=60,
            )
            assert response.status_code == 204, response.text
            self.in_flight_since = None
            self.done += 1

    def stuck_for(self, seconds: float) -> bool:
        started = self.in_flight_since
        return started is not None and time.monotonic() - started > seconds


def test_a_slow_plugin_makes_the_writers_wait_once_its_queue_is_full(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gated.py").write_text(GATED_PLUGIN)
    gate = tmp_path / "gate"
    with ServeProcess(
        tmp_path / "data", plugins, "--without-auth", "--wal-flush-interval", "10ms"
    ) as server:
        created = run_cli(
            "create", "trigger", "--host", server.url, "-d", "mydb",
            "--plugin-filename", "gated.py", "--trigger-spec", "table:cpu",
            "--trigger-arguments", f"gate={gate}", "slow",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        writer = _Writer(server.url)
        writer.start()
        # 60 flushes queue up behind the stuck call; then a write no longer returns
        wait_for(lambda: writer.stuck_for(1.0), "a write to wait for room in the queue")
        logs = query(server.url, "mydb", "SELECT log_text FROM system.processing_engine_logs")
        assert len(logs) == 1  # still inside the first call
        written_while_stuck = writer.done
        gate.touch()
        wait_for(lambda: writer.done > written_while_stuck, "the writer to go on")
        writer.stop.set()
        writer.join(30)
        total = writer.done

        def rows_seen() -> int:
            texts = query(server.url, "mydb", "SELECT log_text FROM system.processing_engine_logs")
            return sum(int(str(row["log_text"]).removeprefix("rows=")) for row in texts)

        # every write reached the plugin: nothing was merged away or dropped
        wait_for(lambda: rows_seen() == total, "every written row to reach the plugin")


def test_create_trigger_sends_the_trigger_settings_and_they_are_listed(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gated.py").write_text(GATED_PLUGIN)
    with ServeProcess(tmp_path / "data", plugins, "--without-auth") as server:
        for extra, name in (
            ((), "defaults"),
            (("--run-asynchronous", "--error-behavior", "disable"), "tuned"),
        ):
            created = run_cli(
                "create", "trigger", "--host", server.url, "-d", "mydb",
                "--plugin-filename", "gated.py", "--trigger-spec", "all_tables",
                "--trigger-arguments", "gate=/nonexistent", *extra, name,
            )  # fmt: skip
            assert created.returncode == 0, created.stderr
        rows = query(
            server.url,
            "mydb",
            "SELECT trigger_name, error_behavior, run_async "
            "FROM system.processing_engine_triggers ORDER BY trigger_name",
        )
        assert rows == [
            {"trigger_name": "defaults", "error_behavior": "log", "run_async": False},
            {"trigger_name": "tuned", "error_behavior": "disable", "run_async": True},
        ]
        bad = run_cli(
            "create", "trigger", "--host", server.url, "-d", "mydb",
            "--plugin-filename", "gated.py", "--trigger-spec", "all_tables",
            "--error-behavior", "ignore", "odd",
        )  # fmt: skip
        assert bad.returncode != 0 and "invalid choice: 'ignore'" in bad.stderr
        # the API requires trigger_settings, as InfluxDB 3 does
        body = {
            "db": "mydb",
            "trigger_name": "raw",
            "plugin_filename": "gated.py",
            "trigger_specification": "all_tables",
            "disabled": False,
        }
        url = f"{server.url}/api/v3/configure/processing_engine_trigger"
        missing = requests.post(url, json=body, timeout=10)
        assert missing.status_code == 400 and "trigger_settings is required" in missing.text
        odd = requests.post(
            url,
            json={**body, "trigger_settings": {"run_async": "yes", "error_behavior": "log"}},
            timeout=10,
        )
        assert odd.status_code == 400 and "run_async must be true or false" in odd.text
        full = {**body, "trigger_settings": {"run_async": False, "error_behavior": "retry"}}
        assert requests.post(url, json=full, timeout=10).status_code == 200
