"""Stand-ins for the notifier: what a replayed trigger delivers to when nothing may be sent.

A replay's figures are the plugin's decisions, taken when a call queues an alert (its history
rows, ``outbox.added_total``); delivery comes after all of them and can change none. Yet the
plugin's delivery code should run as deployed, so a broken payload or outbox shows in a replay
too. So the replay hangs a ``CaptureClient`` on the plugin's state in place of its notifier
client, as it hangs its observer on the detector (replay/trigger.py): the outbox, the background
sender, the payload the plugin builds from its configuration and the outbox's handling of the
answer all run unchanged; only the HTTP request is not made. That request is the notifier
client's own business, tested over real sockets in its own tests; here it cost ~1.3 ms of CPU
per notification (client and stand-in server in one process), a quarter of a replay's time.

The configured notifier address (``port_override``) still points at a ``CaptureEndpoint`` on
the loopback interface that answers the same: nothing a replay without ``--send`` does can
reach a real notifier, whatever client the plugin's state holds.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from madcheck.notify.retry import Delivery

#: the notifier's answer when every sender succeeded
ANSWER: dict[str, Any] = {"status": "ok", "results": {}}
_ANSWER_BYTES = json.dumps(ANSWER).encode()


class CaptureClient:
    """Takes the notifications of a replayed trigger in-process, in place of its
    ``NotifierClient`` (the same ``send``), and answers as the notifier does when every sender
    succeeded."""

    def __init__(self) -> None:
        #: notifications taken
        self.taken = 0

    def send(self, payload: Mapping[str, Any], deadline: float | None = None) -> Delivery:
        # encoded as the HTTP client would post it: a payload that cannot be sent fails here too
        json.dumps(payload)
        self.taken += 1
        return Delivery(ok=True, attempts=1, reason="200 OK", status=200, answer=dict(ANSWER))


class CaptureEndpoint:
    """Takes the notifications posted to it over HTTP; use as a context manager."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: one connection for the whole replay

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's algorithm and
                # the client's delayed ACK hold every answer back by ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                endpoint.posted += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(_ANSWER_BYTES)))
                self.end_headers()
                self.wfile.write(_ANSWER_BYTES)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # nothing of the plugin's traffic belongs on the user's terminal

        endpoint = self
        #: requests answered (a replay's own triggers post none: see the module docstring)
        self.posted = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        # polled every 0.1 s for the end of the replay (the default 0.5 s is paid at every exit)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> CaptureEndpoint:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
