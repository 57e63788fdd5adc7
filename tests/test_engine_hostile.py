"""``madcheck serve`` against hostile clients (issue 14), each attack performed over loopback.

The server runs in-process on a free 127.0.0.1 port with small limits, so that every attack is
quick; waits poll with a generous ceiling rather than sleeping a fixed time.
"""

from __future__ import annotations

import json
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from madcheck.engine import storage as storage_module
from madcheck.engine.server import EngineServer, ServerConfig
from madcheck.engine.storage import MAX_TABLES_PER_DATABASE, Storage
from tests.engine_harness import wait_for

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"

# A request plugin that queries its own database: the warm-start query of a data-writes plugin
# takes the same path (influxdb3_local.query -> storage).
COUNTING_PLUGIN = """
def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return influxdb3_local.query("SELECT count(*) AS n FROM cpu")
"""


def start(tmp_path: Path, **options: Any) -> EngineServer:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "count.py").write_text(COUNTING_PLUGIN)
    (plugins / "noop.py").write_text("def process_writes(a, b, args=None):\n    pass\n")
    settings: dict[str, Any] = {"port": 0, "without_auth": True, "wal_flush_interval_s": 0.05}
    server = EngineServer(ServerConfig(tmp_path / "data", plugins, **(settings | options)))
    server.start()
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EngineServer]:
    running = start(tmp_path, query_timeout_s=3.0)
    try:
        yield running
    finally:
        running.stop()


def write(url: str, body: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{url}/api/v3/write_lp?db=db", data=body, headers=headers, timeout=30)


def sql(url: str, text: str) -> requests.Response:
    return requests.get(f"{url}/api/v3/query_sql?db=db&q={quote(text)}", timeout=60)


def create_trigger(
    url: str, headers: dict[str, str] | None = None, **fields: Any
) -> requests.Response:
    body = {
        "db": "db",
        "trigger_name": "t",
        "plugin_filename": "noop.py",
        "trigger_specification": "all_tables",
        "trigger_arguments": {},
        "trigger_settings": {"run_async": False, "error_behavior": "log"},
    } | fields
    return requests.post(
        f"{url}/api/v3/configure/processing_engine_trigger",
        data=json.dumps(body),
        headers=headers,
        timeout=30,
    )


# -- 1. writes: parsing off the lock, table creation linear --
def _seconds_per_new_table(count: int) -> float:
    body = "\n".join(f"m{i},host=a v=1,n=2i 1" for i in range(count))
    best = float("inf")
    for _ in range(2):
        with tempfile.TemporaryDirectory() as scratch, Storage(Path(scratch)) as storage:
            started = time.perf_counter()
            assert not storage.write_lp("db", body, precision="s").errors
            best = min(best, time.perf_counter() - started)
    return best / count


def test_the_cost_of_a_new_table_does_not_grow_with_the_tables_of_the_write():
    small, large = _seconds_per_new_table(100), _seconds_per_new_table(800)
    # Creating each table through ALTER TABLE made the cost per table grow with the number of
    # tables (8x the tables: 8x the cost per table). SQLite's own schema scan per CREATE still
    # grows a little; a ratio below 4 leaves room for a busy machine.
    assert large / small < 4, (small, large)


def test_a_write_creates_at_most_the_table_limit_and_names_it(tmp_path):
    with Storage(tmp_path) as storage:
        body = "\n".join(f"m{i} v=1 1" for i in range(MAX_TABLES_PER_DATABASE + 2))
        result = storage.write_lp("db", body, precision="s")
        assert len(storage.tables("db")) == MAX_TABLES_PER_DATABASE
        assert [e.line_number for e in result.errors] == [2001, 2002]
        assert f"at most {MAX_TABLES_PER_DATABASE} tables" in result.errors[0].error_message


def test_a_body_being_parsed_does_not_hold_up_other_writers(server, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    parse_lines = storage_module.parse_lines

    def slow_parse(body: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        parsed = parse_lines(body, *args, **kwargs)
        if not body.startswith("slow"):
            return parsed

        def held_up() -> Iterator[Any]:
            entered.set()
            release.wait(timeout=30)
            yield from parsed

        return held_up()

    monkeypatch.setattr(storage_module, "parse_lines", slow_parse)
    slow = threading.Thread(target=write, args=(server.url, "slow v=1"))
    slow.start()
    try:
        assert entered.wait(timeout=30)
        # The slow body is still being parsed; another write of the same database goes through.
        assert write(server.url, "fast v=2").status_code == 204
        assert sql(server.url, "SELECT v FROM fast").json() == [{"v": 2.0}]
    finally:
        release.set()
        slow.join()
    assert sql(server.url, "SELECT v FROM slow").json() == [{"v": 1.0}]


# -- 2. no single client stalls the others --
def test_an_endless_query_is_stopped_and_blocks_no_write_query_or_plugin_call(server):
    assert write(server.url, "cpu v=1").status_code == 204
    assert create_trigger(
        server.url,
        trigger_name="count",
        plugin_filename="count.py",
        trigger_specification="request:count",
    ).ok
    finished: list[str] = []
    answers: dict[str, requests.Response] = {}

    def run(name: str, call: Any) -> None:
        answers[name] = call()
        finished.append(name)

    endless = threading.Thread(target=run, args=("endless", lambda: sql(server.url, ENDLESS)))
    endless.start()
    wait_for(lambda: server.storage._get("db", create=False)._idle_readers == [], "query start")
    others = {
        "query": lambda: sql(server.url, "SELECT count(*) AS n FROM cpu"),
        "write": lambda: write(server.url, "cpu v=2 2"),
        "plugin": lambda: requests.get(f"{server.url}/api/v3/engine/count", timeout=60),
    }
    for name, call in others.items():
        run(name, call)
    endless.join()
    # Everything else was answered while the endless query ran (3 s), and that one was stopped.
    assert finished == ["query", "write", "plugin", "endless"]
    assert answers["query"].json() == [{"n": 1}]
    assert answers["write"].status_code == 204
    assert answers["plugin"].json() == [{"n": 2}]
    assert answers["endless"].status_code == 400
    assert "query stopped after 3 s" in answers["endless"].json()["error"]


def test_a_result_past_the_size_limit_is_a_400_not_a_memory_spike(tmp_path):
    running = start(tmp_path, max_query_result_bytes=100_000)
    try:
        huge = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
            "SELECT x FROM c"
        )
        assert write(running.url, "cpu v=1").status_code == 204
        refused = sql(running.url, huge)
        assert refused.status_code == 400
        assert "query result larger than 100000 bytes" in refused.json()["error"]
        small = sql(running.url, huge.replace("3000000", "1000"))
        assert small.status_code == 200 and len(small.json()) == 1000
    finally:
        running.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has ended the connection (end of input or a reset)."""
    sock.settimeout(0.05)
    try:
        while sock.recv(1024):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def test_idle_and_half_sent_connections_neither_take_health_down_nor_stay_open(tmp_path):
    running = start(tmp_path, max_connections=20, idle_timeout_s=1.0)
    host, port = running._httpd.server_address[:2]
    sockets = [socket.create_connection((str(host), port), timeout=5) for _ in range(60)]
    try:
        for sock in sockets[::2]:  # half of them start a request and never finish it
            sock.sendall(b"POST /api/v3/write_lp?db=db HTTP/1.1\r\nContent-Length: 99\r\n\r\nx")
        # 60 idle sockets against a cap of 20: the idlest make room for real requests.
        health = requests.get(f"{running.url}/health", timeout=10)
        assert health.status_code == 200
        assert write(running.url, "cpu v=1").status_code == 204
        # and every idle one is closed by the server once its time is up
        wait_for(lambda: all(_closed_by_server(sock) for sock in sockets), "idle sockets closed")
        assert sql(running.url, "SELECT v FROM cpu").json() == [{"v": 1.0}]
    finally:
        for sock in sockets:
            sock.close()
        running.stop()


def test_a_client_dripping_its_request_byte_by_byte_is_cut_off(tmp_path):
    running = start(tmp_path, idle_timeout_s=1.0)
    host, port = running._httpd.server_address[:2]
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    try:
        with socket.create_connection((str(host), port), timeout=5) as sock:
            sent = 0
            for byte in request:  # one byte each 50 ms: each recv is quick, the whole is not
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                sent += 1
                time.sleep(0.05)
            assert sent < len(request)  # cut off after about a second, long before the end
    finally:
        running.stop()


# -- 3. --without-auth is not an open door for web pages --
def test_dns_rebinding_and_cross_site_requests_are_refused(server):
    url = server.url
    evil_host = {"Host": "evil.example", "Content-Type": "text/plain"}
    assert create_trigger(url, evil_host).status_code == 403
    assert write(url, "rebound v=1", evil_host).status_code == 403
    assert (
        requests.post(f"{url}/api/v3/configure/token/admin", headers=evil_host).status_code == 403
    )
    foreign = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    assert create_trigger(url, foreign).status_code == 403
    assert write(url, "csrf v=1", foreign).status_code == 403
    assert write(url, "csrf v=1", {"Origin": "null"}).status_code == 403
    assert write(url, "csrf v=1", {"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert sql(url, "SELECT * FROM system.processing_engine_triggers").status_code == 400
    assert requests.get(f"{url}/health", headers={"Host": "evil.example"}).status_code == 200

    port = url.rsplit(":", 1)[1]
    same_origin = {"Origin": url, "Host": f"127.0.0.1:{port}"}
    assert write(url, "ok v=1", same_origin).status_code == 204
    assert write(url, "ok v=2 2", {"Host": f"localhost:{port}"}).status_code == 204
    assert len(sql(url, "SELECT v FROM ok").json()) == 2
    tables = [row["table_name"] for row in sql(url, "SHOW TABLES").json()]
    assert "rebound" not in tables and "csrf" not in tables


def test_allowed_hosts_name_further_host_names(tmp_path):
    running = start(tmp_path, allowed_hosts=("madcheck.internal",))
    try:
        named = {"Host": "madcheck.internal:8181"}
        assert write(running.url, "cpu v=1", named).status_code == 204
        assert write(running.url, "cpu v=1", {"Host": "other.internal"}).status_code == 403
    finally:
        running.stop()


# -- 4. bad input is a 4xx, never a 500 --
@pytest.mark.parametrize(
    ("what", "send"),
    [
        ("NUL in a measurement", lambda url: write(url, "a\0b v=1")),
        ("NUL in a tag key", lambda url: write(url, "cpu,k\0=1 v=1")),
        ("NUL in a field key", lambda url: write(url, "cpu v\0=1")),
        ("NUL in a table name in SQL", lambda url: sql(url, 'SELECT * FROM "a\0b"')),
        ("a blob literal", lambda url: sql(url, "SELECT x'00' AS b")),
        ("a random blob", lambda url: sql(url, "SELECT randomblob(3) AS b")),
        ("NUL in a trigger name", lambda url: create_trigger(url, trigger_name="t\0x")),
        ("NUL in a plugin name", lambda url: create_trigger(url, plugin_filename="noop\0.py")),
        ("plugin_filename '.'", lambda url: create_trigger(url, plugin_filename=".")),
        ("plugin_filename '..'", lambda url: create_trigger(url, plugin_filename="../x.py")),
        ("NUL in an argument", lambda url: create_trigger(url, trigger_arguments={"k": "v\0"})),
        (
            "a request path with ..",
            lambda url: create_trigger(url, trigger_specification="request:../x"),
        ),
        (
            "a request path with odd characters",
            lambda url: create_trigger(url, trigger_specification="request:a b\x01"),
        ),
        ("GET engine/../x", lambda url: requests.get(f"{url}/api/v3/engine/../x", timeout=10)),
        ("GET engine/%00", lambda url: requests.get(f"{url}/api/v3/engine/%00", timeout=10)),
        ("GET engine/a b", lambda url: requests.get(f"{url}/api/v3/engine/a%20b", timeout=10)),
    ],
)
def test_bad_input_is_a_client_error(server, what, send):
    assert write(server.url, "cpu v=1").status_code == 204
    answer = send(server.url)
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text)
    assert answer.json()["error"]
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
    triggers = sql(server.url, "SELECT trigger_name FROM system.processing_engine_triggers")
    assert triggers.json() == []


def test_a_blob_is_refused_to_plugins_too(tmp_path):
    with Storage(tmp_path) as storage:
        storage.write_lp("db", "cpu v=1 1")
        with pytest.raises(storage_module.QueryError, match=r"binary data.*hex"):
            storage.query("db", "SELECT randomblob(3) AS b")


# -- 5. files on disk --
def test_the_data_dir_is_private_and_queries_do_not_reveal_its_path(tmp_path):
    running = start(tmp_path)
    data = tmp_path / "data"
    try:
        assert write(running.url, "cpu v=1").status_code == 204
        files = [data, *data.rglob("*")]
        assert {p.name for p in files} >= {"db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"}
        for path in files:
            expected = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == expected, path
        for text in (
            "SELECT file FROM pragma_database_list",
            "SELECT * FROM pragma_table_info('cpu')",
            "WITH x AS (SELECT name FROM pragma_database_list) SELECT * FROM x",
        ):
            answer = sql(running.url, text)
            assert answer.status_code == 400, text
            assert str(tmp_path) not in answer.text
            assert "pragmas" in answer.json()["error"]
        assert sql(running.url, "SELECT v FROM cpu").json() == [{"v": 1.0}]
    finally:
        running.stop()


def test_the_data_dir_holds_what_the_docs_say(tmp_path):
    running = start(tmp_path, without_auth=False)
    try:
        token = running.tokens.create_token()
        auth = {"Authorization": f"Bearer {token}"}
        assert write(running.url, "cpu v=1", auth).status_code == 204
        # a write that stores nothing creates no database
        failed = requests.post(
            f"{running.url}/api/v3/write_lp?db=nothing", data="cpu v=oops", headers=auth, timeout=10
        )
        assert failed.status_code == 400
    finally:
        running.stop()
    # after a clean stop: one file per database (the WAL folded in) and the token digests
    held = sorted(str(p.relative_to(tmp_path / "data")) for p in (tmp_path / "data").rglob("*"))
    assert held == [
        "databases",
        "databases/_internal.sqlite3",
        "databases/db.sqlite3",
        "tokens.json",
    ]
    assert token not in (tmp_path / "data" / "tokens.json").read_text()
