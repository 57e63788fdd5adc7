"""The delivery deadline is a wall-clock bound on the whole exchange with the notifier.

requests' ``timeout`` limits each socket operation, so a notifier that trickles its answer a byte
at a time never trips it. These stand-ins do exactly that over real loopback sockets; each would
take about 30 s to finish, and every check below allows a generous multiple of the configured
budget, far below that.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests

from madcheck.engine.cache import TriggerCache
from madcheck.notify.client import NotifierClient
from madcheck.notify.retry import RetryPolicy
from madcheck.plugin.writes import STATE_KEY
from tests.support import make_engine, receiver, rows, run_mad_plugin, tried_and_logged

#: one byte every STEP seconds, BYTES of them: about 30 s for a whole answer
STEP = 0.1
BYTES = 300
BUDGET = 0.3
#: well above BUDGET, well below the 30 s a trickling answer takes
PROMPT = 2.0
OK_BODY = b'{"status": "ok", "results": {"slack": {"ok": true, "reason": "HTTP 200"}}}'
TOKEN = "apiv3_deadline_secret_token"


def headers_trickled(conn: socket.socket, stop: threading.Event) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * BYTES + b"\r\n"
    for byte in head:
        if stop.wait(STEP):
            return
        conn.sendall(bytes([byte]))


def body_trickled(conn: socket.socket, stop: threading.Event) -> None:
    body = b'{"status": "ok", "pad": "' + b"a" * BYTES + b'"}'
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    for byte in body:
        if stop.wait(STEP):
            return
        conn.sendall(bytes([byte]))


def hanging(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait()


Answer = Callable[[socket.socket, threading.Event], None]


@contextmanager
def slow_notifier(answer: Answer) -> Iterator[dict[str, int]]:
    """A loopback server that reads each request and then answers with ``answer``."""
    stop = threading.Event()
    state = {"port": 0, "requests": 0}
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.05)
    state["port"] = server.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)  # the request fits one read on loopback
                state["requests"] += 1
                answer(conn, stop)
            except OSError:
                pass  # the client went away

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        server.close()


def client_for(port: int, **policy: float) -> NotifierClient:
    return NotifierClient(
        f"http://127.0.0.1:{port}/api/v3/engine/notify",
        TOKEN,
        RetryPolicy(attempts=int(policy.get("attempts", 3)), backoff=(0.0, 0.0), timeout=10.0),
    )


def timed_send(client: NotifierClient, deadline: float | None) -> tuple[float, object]:
    started = time.monotonic()
    delivery = client.send({"notification_text": "x"}, deadline=deadline)
    return time.monotonic() - started, delivery


def test_a_notifier_trickling_its_headers_is_abandoned_at_the_deadline():
    with slow_notifier(headers_trickled) as notifier:
        took, delivery = timed_send(client_for(notifier["port"]), BUDGET)
    assert took < PROMPT
    assert not delivery.ok and delivery.reason.startswith("timed out")
    assert delivery.attempts == 1 and "127.0.0.1" not in delivery.reason


def test_a_notifier_trickling_its_body_is_abandoned_at_the_deadline():
    with slow_notifier(body_trickled) as notifier:
        took, delivery = timed_send(client_for(notifier["port"]), BUDGET)
    assert took < PROMPT
    assert not delivery.ok and delivery.reason.startswith("timed out")


def test_a_hanging_notifier_is_abandoned_at_the_deadline():
    with slow_notifier(hanging) as notifier:
        took, delivery = timed_send(client_for(notifier["port"]), BUDGET)
    assert took < PROMPT
    assert not delivery.ok and delivery.reason.startswith("timed out")


def test_while_an_abandoned_request_runs_no_second_one_is_started():
    with slow_notifier(body_trickled) as notifier:
        client = client_for(notifier["port"])
        timed_send(client, BUDGET)
        took, delivery = timed_send(client, BUDGET)
        assert notifier["requests"] == 1
    assert took < PROMPT
    assert not delivery.ok
    assert delivery.reason == "notifier still busy with an earlier request"


def test_a_normal_notifier_still_gets_the_alert_within_the_deadline():
    with receiver() as notifier:
        notifier.script = [(200, {"status": "ok", "results": {}}, 0.0, {})]
        client = client_for(notifier.port)
        deliveries = [client.send({"notification_text": f"n{i}"}, deadline=5.0) for i in range(3)]
    assert [d.ok for d in deliveries] == [True, True, True]
    assert notifier.texts() == ["n0", "n1", "n2"]
    assert notifier.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_retries_inside_the_deadline_still_happen():
    with receiver() as notifier:
        notifier.script = [(503, None, 0.0, {}), (200, {"status": "ok", "results": {}}, 0.0, {})]
        delivery = client_for(notifier.port).send({"notification_text": "r"}, deadline=5.0)
    assert delivery.ok and delivery.attempts == 2


class BrokenSession(requests.Session):
    """A session failing the way a bug would, with the URL in its message."""

    def post(self, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        raise RuntimeError(f"cannot post to {url}")


def test_an_unexpected_error_in_the_worker_becomes_a_failed_delivery():
    client = NotifierClient(
        "http://127.0.0.1:9/notify?key=DEADLINESECRET", TOKEN, RetryPolicy(), BrokenSession()
    )
    delivery = client.send({"notification_text": "x"}, deadline=5.0)
    assert not delivery.ok and delivery.reason == "unexpected RuntimeError"
    # the same client is not left "busy": its worker has ended
    assert client.send({"notification_text": "x"}, deadline=5.0).reason == "unexpected RuntimeError"


def test_no_deadline_keeps_the_old_blocking_behaviour():
    with receiver() as notifier:
        notifier.script = [(200, {"status": "ok", "results": {}}, 0.0, {})]
        delivery = client_for(notifier.port).send({"notification_text": "plain"})
    assert delivery.ok and notifier.texts() == ["plain"]


def test_a_trickling_notifier_holds_the_background_sender_only_until_its_deadline():
    """The call never waits; the sender gives up at the exchange's deadline (one 200 ms attempt
    here), long before the trickled answer would end (30 s), and reports a timeout."""
    base = [10, 12, 11, 13, 9, 11, 12, 10, 11]
    with slow_notifier(body_trickled) as notifier:
        engine = make_engine(cache=TriggerCache())
        args = {
            "measurement": "cpu",
            "mad_thresholds": "temp:3:9:2",
            "senders": "slack",
            "slack_webhook_url": "https://hooks.slack.test/services/T0/B0/DEADLINESECRET",
            "influxdb3_auth_token": TOKEN,
            "port_override": str(notifier["port"]),
            "retry_backoff": "0",
            "notification_attempts": "1",
            "notification_timeout": "200ms",
            "outbox_backoff": "1h",
            "outbox_backoff_max": "1h",
            "warm_start": "false",
        }
        run_mad_plugin(engine, [rows("cpu", [*base, 100, 100], host="a")], args)
        assert tried_and_logged(engine, args)
        assert notifier["requests"] == 1
    assert len(engine.cache.get(STATE_KEY).outbox) == 1
    (error,) = engine.log_texts("ERROR")
    assert "alert delivery failed (timed out)" in error
    assert "1 alert(s) waiting in the outbox" in error
