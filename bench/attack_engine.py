"""Hostile clients against ``madcheck serve``: each attack of issue 14, over loopback sockets.

Runs a ``madcheck serve --without-auth`` subprocess from the source tree given by ``--src``
(default: this checkout), performs each attack and prints one line per attack: what the
attacker got, how long it took and the server's peak memory. Run it against two trees to see
before and after side by side::

    python bench/attack_engine.py --src /path/to/main/src
    python bench/attack_engine.py

Nothing leaves 127.0.0.1. Every wait is bounded, so an attack that hangs the server shows up
as a time-out in the output rather than hanging this script.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
ENDLESS_CTE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
BIG_RESULT = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
    "SELECT x, 'some text to make the rows wider' AS pad FROM c"
)


class Server:
    """``madcheck serve`` from ``src`` in a subprocess on a free loopback port."""

    def __init__(self, src: Path, data_dir: Path, plugin_dir: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(src))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "madcheck", "serve", "--data-dir", str(data_dir),
             "--plugin-dir", str(plugin_dir), "--http-bind", "127.0.0.1:0", "--without-auth",
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "listening on http://" in line:
                self.port = int(line.split("http://", 1)[1].split()[0].rsplit(":", 1)[1])
                break
        else:
            raise SystemExit("server did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int | str, str, float]:
    """(status or exception name, first 120 characters of the body, seconds)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        text = answer.read().decode("utf-8", "replace")
        return answer.status, text[:120], time.monotonic() - started
    except OSError as error:
        return type(error).__name__, "", time.monotonic() - started
    finally:
        connection.close()


def query_path(sql: str) -> str:
    from urllib.parse import quote

    return f"/api/v3/query_sql?db=db&q={quote(sql)}"


def in_background(action: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(action()), daemon=True)
    thread.start()
    return thread, result


def attack_new_tables(server: Server, count: int) -> str:
    body = "\n".join(f"t{count}_{i},host=a v=1 1" for i in range(count))
    status, _, seconds = request(
        server.port, "POST", f"/api/v3/write_lp?db=tables{count}&precision=s", body, timeout=900
    )
    return f"status {status} after {seconds:.1f} s ({seconds / count * 1000:.2f} ms/table)"


def attack_parse_under_lock(server: Server) -> str:
    # An unterminated quoted string, then 1000 lines the parser looks through for its end: ~200 KB.
    # (each holds an escaped quote, so the parser tries again on every one).
    hostile = 'm s="start\n' + ("x" * 200 + '\\"\n') * 1000
    thread, result = in_background(
        lambda: request(server.port, "POST", "/api/v3/write_lp?db=db", hostile, timeout=300)
    )
    time.sleep(0.5)
    status, _, seconds = request(server.port, "POST", "/api/v3/write_lp?db=db", "ok v=1")
    thread.join(300)
    hostile_status, _, hostile_seconds = result[0] if result else ("no answer", "", 300.0)
    return (
        f"the hostile write: {hostile_status} after {hostile_seconds:.1f} s; a one-line write "
        f"sent 0.5 s after it: {status} after {seconds:.2f} s"
    )


def attack_endless_cte(server: Server) -> str:
    request(server.port, "POST", "/api/v3/write_lp?db=db", "w v=1")
    thread, slow = in_background(
        lambda: request(server.port, "GET", query_path(ENDLESS_CTE), timeout=120)
    )
    time.sleep(0.5)
    other = request(server.port, "GET", query_path("SELECT 1 AS one"), timeout=120)
    write = request(server.port, "POST", "/api/v3/write_lp?db=db", "w v=1", timeout=120)
    thread.join(120)
    stopped = slow[0] if slow else ("still running", "", 120.0)
    return (
        f"other query {other[0]} after {other[2]:.2f} s, write {write[0]} after "
        f"{write[2]:.2f} s, the CTE answered {stopped[0]} after {stopped[2]:.1f} s"
    )


def attack_big_result(server: Server) -> str:
    request(server.port, "POST", "/api/v3/write_lp?db=db", "w v=1")
    before = server.peak_rss_mb()
    status, text, seconds = request(server.port, "GET", query_path(BIG_RESULT), timeout=300)
    return (
        f"status {status} after {seconds:.1f} s, peak RSS {before:.0f} -> "
        f"{server.peak_rss_mb():.0f} MB {text[:60]!r}"
    )


def attack_idle_sockets(server: Server, count: int, wait_s: float) -> str:
    sockets = []
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        except OSError:
            break
    for sock in sockets[::2]:
        sock.sendall(b"POST /api/v3/write_lp?db=db HTTP/1.1\r\nContent-Length: 100\r\n\r\nx")
    time.sleep(0.5)
    health = request(server.port, "GET", "/health", timeout=10)
    time.sleep(wait_s)
    still_open = 0
    for sock in sockets:
        sock.settimeout(0.01)
        try:
            still_open += 0 if sock.recv(1) == b"" else 1
        except TimeoutError:
            still_open += 1
        except OSError:
            pass
        sock.close()
    return (
        f"{len(sockets)} sockets (half sent a partial request): /health {health[0]} after "
        f"{health[2]:.2f} s; {still_open} still open after {wait_s:g} s"
    )


def attack_cross_origin(server: Server) -> str:
    trigger = json.dumps({
        "db": "db", "trigger_name": "evil", "plugin_filename": "noop.py",
        "trigger_specification": "all_tables", "trigger_arguments": {},
        "trigger_settings": {"run_async": False, "error_behavior": "log"},
    })  # fmt: skip
    rebinding = request(
        server.port, "POST", "/api/v3/configure/processing_engine_trigger", trigger,
        {"Host": "evil.example", "Content-Type": "text/plain"},
    )  # fmt: skip
    csrf = request(server.port, "POST", "/api/v3/write_lp?db=db", "csrf v=1",
                   {"Origin": "http://evil.example", "Content-Type": "text/plain"})  # fmt: skip
    return f"Host: evil.example trigger -> {rebinding[0]}; foreign Origin write -> {csrf[0]}"


def attack_bad_input(server: Server) -> str:
    def trigger(**fields: str) -> tuple[int | str, str, float]:
        body = {
            "db": "db", "trigger_name": "t", "plugin_filename": "noop.py",
            "trigger_specification": "all_tables", "trigger_arguments": {},
        "trigger_settings": {"run_async": False, "error_behavior": "log"},
        } | fields  # fmt: skip
        return request(server.port, "POST", "/api/v3/configure/processing_engine_trigger",
                       json.dumps(body))  # fmt: skip

    cases = {
        "NUL measurement": request(server.port, "POST", "/api/v3/write_lp?db=db", "a\0b v=1"),
        "NUL tag key": request(server.port, "POST", "/api/v3/write_lp?db=db", "a,k\0=1 v=1"),
        "NUL table in SQL": request(server.port, "GET", query_path('SELECT * FROM "a\0b"')),
        "SELECT x'00'": request(server.port, "GET", query_path("SELECT x'00' AS b")),
        "randomblob(3)": request(server.port, "GET", query_path("SELECT randomblob(3) AS b")),
        "NUL trigger name": trigger(trigger_name="t\0x"),
        "NUL plugin name": trigger(plugin_filename="noop\0.py"),
        "plugin_filename '.'": trigger(plugin_filename=".", trigger_name="dot"),
        "request:../x": trigger(trigger_specification="request:../x", trigger_name="up"),
        "request path odd": trigger(trigger_specification="request:a b\x01", trigger_name="odd"),
        "GET engine/../x": request(server.port, "GET", "/api/v3/engine/../x"),
        "GET engine/%00": request(server.port, "GET", "/api/v3/engine/%00"),
    }
    return "; ".join(f"{name}: {result[0]}" for name, result in cases.items())


def attack_files(server: Server, data_dir: Path) -> str:
    modes = {
        str(path.relative_to(data_dir.parent)): oct(path.stat().st_mode & 0o777)
        for path in [data_dir, *sorted(data_dir.rglob("*"))]
    }
    listed = request(server.port, "GET", query_path("SELECT file FROM pragma_database_list"))
    return f"modes {modes}; pragma_database_list -> {listed[0]} {listed[1][:80]!r}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--src", type=Path, default=HERE / "src")
    parser.add_argument("--tables", type=int, nargs="*", default=[500, 1000, 3000])
    parser.add_argument("--sockets", type=int, default=600)
    parser.add_argument("--idle-wait", type=float, default=30.0)
    parser.add_argument("--only", nargs="*", default=None, help="attack names to run")
    parser.add_argument("serve_args", nargs="*", help="extra arguments for madcheck serve")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        plugin_dir = Path(scratch) / "plugins"
        plugin_dir.mkdir()
        (plugin_dir / "noop.py").write_text("def process_writes(a, b, args=None):\n    pass\n")
        data_dir = Path(scratch) / "data"
        attacks: dict[str, Callable[[Server], str]] = {
            "new-tables": lambda s: "; ".join(
                f"{n}: {attack_new_tables(s, n)}" for n in options.tables
            ),
            "parse-under-lock": attack_parse_under_lock,
            "endless-cte": attack_endless_cte,
            "big-result": attack_big_result,
            "idle-sockets": lambda s: attack_idle_sockets(s, options.sockets, options.idle_wait),
            "cross-origin": attack_cross_origin,
            "bad-input": attack_bad_input,
            "files": lambda s: attack_files(s, data_dir),
        }
        print(f"source: {options.src}", flush=True)
        for name, attack in attacks.items():
            if options.only and name not in options.only:
                continue
            server = Server(options.src, data_dir, plugin_dir, *options.serve_args)
            try:
                print(f"{name}: {attack(server)}", flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
