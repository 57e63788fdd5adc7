"""``madcheck demo``: the whole seed workflow on one machine, in well under a minute.

It starts the local engine in-process on a free loopback port with an empty plugin dir, a local
webhook receiver standing in for Slack & co., deploys the way README's Deploy section does on a
real InfluxDB 3 (uploads the ``madcheck`` package directory, then creates the two triggers of the
seed with ``--path madcheck``: the MAD check on ``all_tables`` and the notifier on
``request:notify``) through the HTTP API, writes a generated CPU stream with an
injected anomaly, and prints as it happens the points going in, the alert reaching the receiver
and finally the processing engine's log table. It exits 1 if the alert never arrives.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import sysconfig
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import madcheck
from madcheck.engine.client import ClientError, EngineClient, upload_plugin
from madcheck.plugin.delivery import wait_for_all_deliveries

if TYPE_CHECKING:
    from madcheck.engine.server import EngineServer

PLUGIN_FILES = ("mad_check_plugin.py", "notifier_plugin.py")
DATABASE = "demo"
TABLE = "cpu"
FIELD = "usage"


def plugin_source_dir() -> Path:
    """Where the two single-file plugins are: the checkout's ``plugins/``, else the installed copy.

    ``madcheck replay`` runs ``mad_check_plugin.py`` from here. A wheel installs them under
    ``<prefix>/share/madcheck/plugins`` (pyproject ``data-files``), so that works from
    ``pip install madcheck`` as well as from a checkout. (The demo deploys the package directory.)
    """
    checkout = Path(__file__).resolve().parents[2] / "plugins"
    installed = Path(sysconfig.get_path("data")) / "share" / "madcheck" / "plugins"
    for candidate in (checkout, installed):
        if all((candidate / name).is_file() for name in PLUGIN_FILES):
            return candidate
    raise FileNotFoundError(
        f"cannot find {' and '.join(PLUGIN_FILES)} (looked in {checkout} and {installed})"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="see MAD alerting work end to end, locally, in seconds",
        description=(
            "Start the local engine and a webhook receiver on loopback, create the MAD and "
            "notifier triggers, write a CPU stream with an injected anomaly and show the alert "
            "arriving. Needs no network; exits 1 if no alert arrives."
        ),
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="keep the engine's data here (default: temp)"
    )
    parser.add_argument(
        "--points", type=int, default=60, help="normal points before the anomaly (default 60)"
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="random seed of the generated stream (default 7)"
    )
    parser.add_argument(
        "--timeout", default=30.0, type=float, help="seconds to wait for the alert (default 30)"
    )
    parser.set_defaults(handler=run_demo)


class _Receiver:
    """A local webhook endpoint that records every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    receiver.bodies.append(json.loads(raw))
                except ValueError:
                    receiver.bodies.append(raw.decode("utf-8", "replace"))
                receiver.arrived.set()
                _say("#", f"ALERT reached the webhook: {_alert_text(receiver.bodies[-1])}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host_port = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.url = f"http://{self.host_port}/webhook"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def generate_stream(normal_points: int, seed: int, start_ns: int) -> list[tuple[str, bool]]:
    """Lines of a steady CPU series with a burst of outliers after ``normal_points`` points.

    Returns ``(line, is_anomaly)`` pairs, one second apart in data time.
    """
    rng = random.Random(seed)
    lines: list[tuple[str, bool]] = []
    anomaly = range(normal_points, normal_points + 8)
    for index in range(normal_points + 20):
        is_anomaly = index in anomaly
        value = 95.0 + rng.uniform(-1, 1) if is_anomaly else 40.0 + 3 * math.sin(index / 4)
        value += rng.uniform(-0.5, 0.5)
        time_ns = start_ns + index * 1_000_000_000
        lines.append((f"{TABLE},host=web01 {FIELD}={value:.2f} {time_ns}", is_anomaly))
    return lines


def _say(symbol: str, text: str) -> None:
    print(f"{symbol} {text}", flush=True)


def run_demo(options: argparse.Namespace) -> int:
    from madcheck.engine.server import EngineServer, ServerConfig

    with tempfile.TemporaryDirectory(prefix="madcheck-demo-") as scratch, _Receiver() as receiver:
        plugin_dir = Path(scratch) / "plugins"
        plugin_dir.mkdir()
        data_dir = options.data_dir or Path(scratch) / "data"
        server = EngineServer(
            ServerConfig(data_dir=data_dir, plugin_dir=plugin_dir, port=0, wal_flush_interval_s=0.1)
        )
        server.start()
        try:
            return _run(server, receiver, options)
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            server.stop()


def _run(server: EngineServer, receiver: _Receiver, options: argparse.Namespace) -> int:
    token = server.tokens.create_token()
    client = EngineClient(server.url, token)
    port = server.url.rsplit(":", 1)[1]
    _say("*", f"engine listening on {server.url}; webhook receiver on {receiver.url}")
    for trigger in server.storage.triggers(DATABASE):
        # a reused --data-dir: the previous run's triggers point at ports that are gone
        server.engine.delete_trigger(DATABASE, trigger.name)
        _say("*", f"removed trigger {trigger.name} left by an earlier demo run")
    package = Path(madcheck.__file__).parent
    plugin = upload_plugin(client, package, DATABASE)
    _say("*", f"uploaded the {plugin} package directory to the plugin dir (--upload --path)")
    client.request(
        "POST",
        "/api/v3/configure/processing_engine_trigger",
        json_body={
            "db": DATABASE,
            "trigger_name": "notifier",
            "plugin_filename": plugin,
            "trigger_specification": "request:notify",
            "trigger_arguments": {"allowed_webhook_hosts": receiver.host_port},
            "trigger_settings": {"run_async": False, "error_behavior": "log"},
        },
    )
    _say(
        "*",
        f"created trigger notifier        (--path {plugin}, request:notify, "
        f"allowed_webhook_hosts={receiver.host_port})",
    )
    # Secrets stay out of the trigger arguments, which every token holder can read
    # (system.processing_engine_trigger_arguments): the plugin reads them from the server's
    # environment, here this process's, as env:NAME.
    os.environ["MADCHECK_DEMO_WEBHOOK_URL"] = receiver.url
    os.environ["MADCHECK_DEMO_TOKEN"] = token
    mad_arguments = {
        "measurement": TABLE,
        "mad_thresholds": f"{FIELD}:3:20:3",
        "senders": "http",
        "http_webhook_url": "env:MADCHECK_DEMO_WEBHOOK_URL",
        "influxdb3_auth_token": "env:MADCHECK_DEMO_TOKEN",
        "port_override": port,
        "notification_path": "notify",
    }
    client.request(
        "POST",
        "/api/v3/configure/processing_engine_trigger",
        json_body={
            "db": DATABASE,
            "trigger_name": "mad_check",
            "plugin_filename": plugin,
            "trigger_specification": "all_tables",
            "trigger_arguments": mad_arguments,
            "trigger_settings": {"run_async": False, "error_behavior": "log"},
        },
    )
    _say(
        "*",
        f"created trigger mad_check       (--path {plugin}, all_tables, "
        f"mad_thresholds={FIELD}:3:20:3: 3 outliers in a row beyond 3 MADs of the last 20)",
    )

    start_ns = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000
    stream = generate_stream(options.points, options.seed, start_ns)
    for line, is_anomaly in stream:
        client.request("POST", "/api/v3/write_lp", params={"db": DATABASE}, data=line.encode())
        _say(
            "!" if is_anomaly else ">",
            f"wrote {line}" + ("   <- injected anomaly" if is_anomaly else ""),
        )
        time.sleep(0.02)

    if not receiver.arrived.wait(options.timeout):
        _say("x", f"no alert reached the webhook within {options.timeout:g}s")
        _print_tables(client, alerted=False)
        return 1
    # The MAD trigger posts alerts from a background sender and logs the outcome in its next
    # call: wait until everything is delivered, then write one more point for that call.
    wait_for_all_deliveries(options.timeout)
    last = generate_stream(options.points + 21, options.seed, start_ns)[-1][0]
    client.request("POST", "/api/v3/write_lp", params={"db": DATABASE}, data=last.encode())
    _say(">", f"wrote {last}   <- the trigger's next call logs the delivery")
    server.engine.wait_idle(timeout=options.timeout)
    _say("*", f"alerts received by the webhook: {len(receiver.bodies)}")
    _print_tables(client, alerted=True)
    return 0


def _alert_text(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("notification_text", "message", "text", "content"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return json.dumps(body)[:300]


_ALERT_HISTORY = (
    "the MAD plugin's alert history (mad_alerts)",
    "SELECT time, field, rule, state, value, round(median, 2) AS median, "
    "round(lower, 2) AS lower, round(upper, 2) AS upper FROM mad_alerts ORDER BY time",
)
_ENGINE_LOGS = (
    "system.processing_engine_logs",
    "SELECT event_time, trigger_name, log_level, log_text "
    "FROM system.processing_engine_logs ORDER BY event_time",
)


def _print_tables(client: EngineClient, alerted: bool) -> None:
    """The alert history (the plugin creates it with the first alert) and the engine's logs."""
    for title, sql in [_ALERT_HISTORY, _ENGINE_LOGS] if alerted else [_ENGINE_LOGS]:
        answer = client.request(
            "POST", "/api/v3/query_sql", json_body={"db": DATABASE, "q": sql, "format": "pretty"}
        )
        print(f"\n{title}:\n{answer.text}", end="", flush=True)
