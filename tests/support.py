"""Test doubles shared by the plugin tests: a schema-answering engine and a loopback notifier."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.engine.catalog import SchemaQueries
from madcheck.engine.loader import load_entry_point

REPO = Path(__file__).resolve().parent.parent
MAD_PLUGIN = REPO / "plugins" / "mad_check_plugin.py"


def make_engine(
    tables: Mapping[str, Mapping[str, list[str]]] | None = None, **kwargs: Any
) -> EngineAPI:
    queries = SchemaQueries(tables or {"cpu": {"tags": ["host"], "fields": ["temp", "load"]}})
    kwargs.setdefault("cache", TriggerCache())
    return EngineAPI(database="mydb", query_handler=queries, **kwargs)


def run_mad_plugin(engine: EngineAPI, batches: list[dict], args: dict[str, str] | None) -> None:
    """Execute plugins/mad_check_plugin.py exactly as the engine does: fresh globals each call."""
    load_entry_point(MAD_PLUGIN, "process_writes")(engine, batches, args)


def rows(
    table: str,
    values: list[Any],
    start_s: int = 1_700_000_000,
    step_s: int = 10,
    field_name: str = "temp",
    **tags: str,
) -> dict:
    """A table batch of one series: one row per value, ``step_s`` seconds apart."""
    return {
        "table_name": table,
        "rows": [
            {**tags, field_name: value, "time": (start_s + i * step_s) * 1_000_000_000}
            for i, value in enumerate(values)
        ],
    }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """A loopback HTTP server that records POSTs and answers from a script of responses."""

    port: int
    requests: list[Received] = field(default_factory=list)
    #: each entry: (status, json body or None, delay seconds, extra headers); the last repeats
    script: list[tuple[int, Any, float, dict[str, str]]] = field(
        default_factory=lambda: [(200, {"status": "ok", "results": {}}, 0.0, {})]
    )
    _served: int = 0

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next_answer(self) -> tuple[int, Any, float, dict[str, str]]:
        answer = self.script[min(self._served, len(self.script) - 1)]
        self._served += 1
        return answer

    def texts(self) -> list[str]:
        return [r.body.get("notification_text", "") for r in self.requests]


@contextmanager
def receiver(port: int = 0) -> Iterator[Receiver]:
    """Start a ``Receiver`` on 127.0.0.1 (``port``, or a free one) for the duration of the block."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            recv = state["recv"]
            recv.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status, answer, delay, headers = recv.next_answer()
            if delay:
                time.sleep(delay)
            data = b"" if answer is None else json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (timeout): nothing left to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    state["recv"] = Receiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state["recv"]
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: generous bound for waiting on the background sender; a correct run needs milliseconds
DELIVERY_WAIT_S = 20.0


def delivered_and_logged(engine: EngineAPI, args: dict[str, str] | None) -> bool:
    """Wait until the MAD trigger's outbox is empty, then run one call with no rows so the
    trigger logs what its background sender did (outcomes are logged by the next call)."""
    from madcheck.plugin.delivery import wait_for_delivery

    drained = wait_for_delivery(engine, DELIVERY_WAIT_S)
    run_mad_plugin(engine, [], args)
    return drained


def tried_and_logged(engine: EngineAPI, args: dict[str, str] | None) -> bool:
    """Like ``delivered_and_logged`` for a notifier expected to fail: wait until every due
    alert has been tried once (what is left waits for a backoff), then log."""
    from madcheck.plugin.delivery import wait_for_sender

    tried = wait_for_sender(engine, DELIVERY_WAIT_S)
    run_mad_plugin(engine, [], args)
    return tried


def run_and_settle(engine: EngineAPI, batches: list[dict], args: dict[str, str] | None) -> None:
    """``run_mad_plugin``, then let the background sender try what the call queued and log the
    outcome (``tried_and_logged``): for tests that read what reached the notifier after a call."""
    run_mad_plugin(engine, batches, args)
    assert tried_and_logged(engine, args), "the sender did not settle"


def wait_until(condition: Any, timeout: float = DELIVERY_WAIT_S) -> bool:
    """Poll ``condition()`` until it holds or ``timeout`` passes (for effects seen from outside,
    such as requests reaching a stand-in); True if it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
