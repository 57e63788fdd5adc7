"""Helpers for the engine's end-to-end tests: a ``madcheck serve`` subprocess, the CLI, a webhook.

Everything listens on 127.0.0.1 only. Waits poll a condition with a generous ceiling instead of
sleeping a fixed time, so the tests are as fast as the machine allows and never flaky by timing.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

SRC = Path(__file__).resolve().parents[1] / "src"
WAIT_CEILING_S = 30.0


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INFLUXDB3_AUTH_TOKEN"}
    env["PYTHONPATH"] = str(SRC)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m madcheck ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "madcheck", *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=WAIT_CEILING_S,
        check=False,
    )


def admin_auth(url: str) -> tuple[str, tuple[str, ...]]:
    """Create the server's admin token; return it and the CLI's ``--host``/``--token``."""
    created = run_cli("create", "token", "--admin", "--host", url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.split("Token: ", 1)[1].split()[0]
    return token, ("--host", url, "--token", token)


def create_trigger(
    auth: tuple[str, ...],
    plugin: str,
    spec: str,
    name: str,
    arguments: str | None = None,
    *options: str,
) -> None:
    """``madcheck create trigger --path PLUGIN`` on database ``mydb``, which must succeed."""
    extra = ("--trigger-arguments", arguments) if arguments is not None else ()
    created = run_cli(
        "create", "trigger", *auth, "--database", "mydb",
        "--path", plugin, "--trigger-spec", spec, *extra, *options, name,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after the ceiling."""
    deadline = time.monotonic() + WAIT_CEILING_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class ServeProcess:
    """``madcheck serve`` in a subprocess on a free loopback port."""

    def __init__(
        self, data_dir: Path, plugin_dir: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.env = env or cli_env()
        self.args = [
            sys.executable,
            "-m",
            "madcheck",
            "serve",
            "--node-id",
            "test-node",
            "--object-store",
            "file",
            "--data-dir",
            str(data_dir),
            "--plugin-dir",
            str(plugin_dir),
            "--http-bind",
            "127.0.0.1:0",
            "--wal-flush-interval",
            "50ms",
            *extra,
        ]
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> ServeProcess:
        self.process = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + WAIT_CEILING_S
        while not self.url:
            line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("serve exited early:\n" + "".join(self.output))
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].split()[0]
        return self

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it to exit; returns its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=WAIT_CEILING_S)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Webhook:
    """A loopback endpoint recording the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"

    def __enter__(self) -> Webhook:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def query(url: str, database: str, sql: str, token: str | None = None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.post(
        f"{url}/api/v3/query_sql", json={"db": database, "q": sql}, headers=headers, timeout=10
    )
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()
    return rows


def log_texts(url: str, database: str, token: str | None = None) -> list[str]:
    rows = query(url, database, "SELECT log_text FROM system.processing_engine_logs", token)
    return [str(row["log_text"]) for row in rows]
