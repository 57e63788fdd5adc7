"""Replay the plugin attacks of issue 14 against whichever ``madcheck`` is importable.

    .venv/bin/python bench/security_attacks.py                       # this checkout
    PYTHONPATH=/path/to/old/src .venv/bin/python bench/security_attacks.py   # an older one

Each row names an attack and what happened: who received what, how much memory a call took, how
many times a file was opened. Everything stays on 127.0.0.1; nothing is sent beyond loopback
(the metadata row only asks the allow-list, it never connects).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import tempfile
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import madcheck
from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.engine.loader import load_entry_point

PLUGINS = Path(madcheck.__file__).resolve().parents[2] / "plugins"


class Receiver:
    """A loopback HTTP server counting the POSTs it gets; ``redirect`` answers 302 there."""

    def __init__(self, redirect: str | None = None) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits += 1
                if redirect:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receivers(count: int) -> Iterator[list[Receiver]]:
    made = [Receiver() for _ in range(count)]
    try:
        yield made
    finally:
        for receiver in made:
            receiver.close()


FAST = {"retry_attempts": "1", "request_timeout": "5s", "retry_backoff": "1ms..2ms"}


def notify(config: dict[str, Any], args: dict[str, str]) -> dict[str, Any]:
    process_request = load_entry_point(PLUGINS / "notifier_plugin.py", "process_request")
    body = json.dumps({"notification_text": "probe", "senders_config": config}).encode()
    answer, _ = process_request(EngineAPI(database="db"), {}, {}, body, {**FAST, **args})
    return dict(answer)


def backslash() -> str:
    with receivers(2) as (listed, target):
        url = f"http://127.0.0.1:{target.port}\\@127.0.0.1:{listed.port}/hook"
        answer = notify(
            {"http": {"http_webhook_url": url}},
            {"allowed_webhook_hosts": f"127.0.0.1:{listed.port}"},
        )
        return f"unlisted port got {target.hits} POST(s); answer {answer['results']['http']}"


def redirect() -> str:
    with receivers(1) as (target,):
        listed = Receiver(redirect=target.url)
        try:
            answer = notify(
                {"http": {"http_webhook_url": listed.url}},
                {"allowed_webhook_hosts": f"127.0.0.1:{listed.port}"},
            )
        finally:
            listed.close()
        return f"redirect target got {target.hits} POST(s); answer {answer['results']['http']}"


def metadata() -> str:
    from madcheck.notify.allowlist import HostAllowList

    url = "http://169.254.169.254/latest/meta-data/"
    return f"no allow-list allows {url}: {HostAllowList.parse(None).allows(url)}"


def ftp_url() -> str:
    from madcheck.config.settings import ConfigError, load_config

    try:
        load_config(
            {
                "measurement": "cpu",
                "mad_thresholds": "t:3:9:2",
                "senders": "slack",
                "slack_webhook_url": "ftp://x",
            },
            environ={},
        )
    except ConfigError as error:
        return f"refused at load: {error}"
    return "accepted at load (fails at the notifier on every alert)"


def opens_of(path: Path, action: Callable[[], None]) -> tuple[int, float]:
    """How often ``action`` opens ``path``, and its peak traced memory in MiB."""
    opened = []
    target = str(path)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and str(args[0]).endswith(target.rsplit("/", 1)[-1]):
            opened.append(args[0])

    sys.addaudithook(audit)  # hooks cannot be removed: the file name is unique per row
    tracemalloc.start()
    try:
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return len(opened), peak / 2**20


def config_file(row: str) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        plugin_dir = Path(scratch) / "plugins"
        plugin_dir.mkdir()
        outside = Path(scratch) / f"outside-{row}.toml"
        if row == "dotdot":
            outside.write_text('db_password = "hunter2"\nsecret_key = "x"\n')
        else:
            with outside.open("wb") as handle:  # a sparse 64 MiB file, read whole by a naive reader
                handle.truncate(64 << 20)
        os.environ["PLUGIN_DIR"] = str(plugin_dir)
        engine = EngineAPI(database="db", cache=TriggerCache())
        args = {
            "measurement": "cpu",
            "mad_thresholds": "t:3:9:2",
            "senders": "http",
            "http_webhook_url": "http://127.0.0.1:9/x",
            "config_file_path": f"../{outside.name}",
            "warm_start": "false",
        }
        process_writes = load_entry_point(PLUGINS / "mad_check_plugin.py", "process_writes")
        opens, peak = opens_of(
            outside, lambda: [process_writes(engine, [], args) for _ in range(5)]
        )
        logs = [f"{line.log_level} {line.log_text}" for line in engine.logs]
        echoed = any("db_password" in line or "secret_key" in line for line in logs)
        first = next((line for line in logs if "ERROR" in line or "unknown" in line), logs[0])
        return (
            f"5 calls: {opens} open(s) of the file, peak {peak:.1f} MiB, keys echoed: {echoed}; "
            f"log: {first[:110]}"
        )


def env_reference() -> str:
    from madcheck.config.settings import ConfigError, load_config

    os.environ["BENCH_SLACK_URL"] = "https://hooks.slack.com/services/T/B/bench-secret"
    try:
        loaded = load_config(
            {
                "measurement": "cpu",
                "mad_thresholds": "t:3:9:2",
                "senders": "slack",
                "slack_webhook_url": "env:BENCH_SLACK_URL",
            }
        )
    except ConfigError as error:
        return f"refused: {error}"
    url = loaded.config.senders_config["slack"]["slack_webhook_url"]
    return (
        "resolved from the environment"
        if url.startswith("https://")
        else f"taken literally: {url!r}"
    )


def urllib3_debug() -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    try:
        with receivers(1) as (hook,):
            secret_url = f"http://127.0.0.1:{hook.port}/services/T0/B0/path-secret"
            notify({"slack": {"slack_webhook_url": secret_url}}, {})
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    lines = [line for line in stream.getvalue().splitlines() if "urllib3" in line or "POST" in line]
    leaked = [line for line in stream.getvalue().splitlines() if "path-secret" in line]
    return (
        f"{len(leaked)} DEBUG line(s) with the Slack path; e.g. {(leaked or lines or [''])[0][:90]}"
    )


def endless_answer() -> str:
    """A webhook answering 64 MiB: how much memory the notifier's call takes."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            try:
                for _ in range(1024):
                    connection.sendall(b"x" * 65536)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    tracemalloc.start()
    try:
        answer = notify({"http": {"http_webhook_url": f"http://127.0.0.1:{port}/hook"}}, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        listener.close()
    return f"peak {peak / 2**20:.1f} MiB; answer {answer['results']['http']}"


ROWS = [
    ("SSRF: backslash URL past the allow-list", backslash),
    ("SSRF: redirect to an unlisted port", redirect),
    ("SSRF: cloud metadata without allow-list", metadata),
    ("ftp:// webhook URL at MAD config load", ftp_url),
    ("config_file_path=../outside.toml", lambda: config_file("dotdot")),
    ("config_file_path=../ a 64 MiB file", lambda: config_file("huge")),
    ("slack_webhook_url=env:NAME", env_reference),
    ("urllib3 DEBUG log of a Slack path", urllib3_debug),
    ("webhook answering 64 MiB", endless_answer),
]


def main() -> None:
    print(f"madcheck from {Path(madcheck.__file__).parent}")
    for name, attack in ROWS:
        try:
            outcome = attack()
        except Exception as error:  # an old version may lack an API: say so, go on
            outcome = f"{type(error).__name__}: {error}"[:140]
        print(f"{name:42} | {outcome}")


if __name__ == "__main__":
    main()
