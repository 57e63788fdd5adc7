"""The HTTP API of ``madcheck serve``, answered as InfluxDB 3 Core answers it.

The standard library's ``ThreadingHTTPServer`` is enough here: one thread per request keeps a slow
request plugin from holding up writers, requests are small, and it adds no dependency. Responses
close the connection, so shutting down never waits on an idle keep-alive client.

Shutdown order matters: first writes are refused (503), then pending writes are flushed to the
triggers while the server still answers ``/api/v3/engine/...`` (a data-writes plugin may be posting
an alert to a request trigger at that moment), then the listener stops and storage is closed.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from madcheck.engine.auth import TokenStore, bearer_token
from madcheck.engine.formats import FORMATS, render
from madcheck.engine.plugin_files import PluginPathError, save_plugin_file
from madcheck.engine.processing import EngineError, ProcessingEngine, RequestCall
from madcheck.engine.storage import (
    ERROR_BEHAVIORS,
    InvalidRequestError,
    QueryError,
    Storage,
    TriggerDefinition,
    WriteResult,
)

logger = logging.getLogger("madcheck.engine")

DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
VERSION = "3.0.0-madcheck"

_V3_PRECISIONS = {
    "auto": "auto",
    "ns": "ns",
    "nanosecond": "ns",
    "us": "us",
    "microsecond": "us",
    "ms": "ms",
    "millisecond": "ms",
    "s": "s",
    "second": "s",
}
_V1_PRECISIONS = {
    "n": "ns",
    "ns": "ns",
    "u": "us",
    "us": "us",
    "ms": "ms",
    "s": "s",
    "m": "m",
    "h": "h",
}
_TRIGGER_PATH = "/api/v3/configure/processing_engine_trigger"
_ENGINE_PREFIX = "/api/v3/engine/"
_PLUGIN_FILES_PATH = "/api/v3/plugins/files"


class HTTPError(Exception):
    """An error answered as InfluxDB does: a status and ``{"error": ..., "data": ...}``."""

    def __init__(self, status: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.data = data


@dataclass
class ServerConfig:
    data_dir: Path
    plugin_dir: Path
    host: str = "127.0.0.1"
    port: int = 8181
    without_auth: bool = False
    wal_flush_interval_s: float = 1.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    node_id: str = "node0"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"))


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise HTTPError(400, f"invalid boolean {value!r}: expected true or false")


class EngineServer:
    """Storage, processing engine and HTTP listener, started and stopped together."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # Bind first: a taken port then fails before any database file is opened.
        self._httpd = ThreadingHTTPServer((config.host, config.port), _make_handler(self))
        self._thread: threading.Thread | None = None
        self._accepting_writes = True
        self._writes_in_flight = 0
        self._writes_done = threading.Condition()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self.storage = Storage(config.data_dir)
            self.tokens = TokenStore(config.data_dir / "tokens.json")
            self.engine = ProcessingEngine(self.storage, config.plugin_dir)
            self.engine.load_saved_triggers()
        except BaseException:
            self._httpd.server_close()
            raise

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.engine.start_flushing(self.config.wal_flush_interval_s)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="http", kwargs={"poll_interval": 0.1}
        )
        self._thread.start()

    def stop(self) -> None:
        """Refuse writes, flush pending writes to the triggers, stop listening, close storage."""
        with self._writes_done:
            self._accepting_writes = False
            self._writes_done.wait_for(lambda: self._writes_in_flight == 0)
        self.engine.close()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self.storage.close()

    # -- routes --------------------------------------------------------------------------------
    def dispatch(
        self, method: str, target: str, headers: dict[str, str], read_body: Callable[[], bytes]
    ) -> Response:
        parts = urlsplit(target)
        path = parts.path
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if path in ("/health", "/ping"):
            return self._health(method, path)
        if path == "/api/v3/configure/token/admin" and method == "POST":
            return self._create_admin_token()
        self._authorize(headers)
        if path == "/api/v3/write_lp":
            self._require(method, "POST")
            return self._write(
                query.get("db"),
                read_body(),
                _V3_PRECISIONS,
                query.get("precision", "auto"),
                accept_partial=_flag(query.get("accept_partial"), True),
                no_sync=_flag(query.get("no_sync"), False),
            )
        if path == "/api/v2/write":
            self._require(method, "POST")
            return self._write(
                query.get("bucket"),
                read_body(),
                _V3_PRECISIONS | _V1_PRECISIONS,
                query.get("precision", "ns"),
                accept_partial=False,
            )
        if path == "/write":
            self._require(method, "POST")
            return self._write(
                query.get("db"),
                read_body(),
                _V1_PRECISIONS,
                query.get("precision", "ns"),
                accept_partial=False,
            )
        if path == "/api/v3/query_sql":
            return self._query(method, query, read_body)
        if path.startswith(_ENGINE_PREFIX):
            self._require(method, "GET", "POST")
            return self._engine_request(path[len(_ENGINE_PREFIX) :], query, headers, read_body())
        if path == _TRIGGER_PATH:
            self._require(method, "POST", "DELETE")
            if method == "POST":
                return self._create_trigger(read_body())
            return self._delete_trigger(query, read_body())
        if path == _PLUGIN_FILES_PATH:
            self._require(method, "POST")
            return self._upload_plugin_file(read_body())
        if path in (_TRIGGER_PATH + "/enable", _TRIGGER_PATH + "/disable"):
            self._require(method, "POST")
            return self._set_disabled(query, read_body(), disabled=path.endswith("/disable"))
        raise HTTPError(404, f"no route for {path}")

    @staticmethod
    def _require(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HTTPError(405, f"method {method} not allowed here; use {' or '.join(allowed)}")

    def _authorize(self, headers: dict[str, str]) -> None:
        if self.config.without_auth:
            return
        if not self.tokens.is_valid(bearer_token(headers.get("authorization"))):
            raise HTTPError(
                401,
                "missing or invalid token: send 'Authorization: Bearer <token>' "
                "(create one with: madcheck create token --admin)",
            )

    def _health(self, method: str, path: str) -> Response:
        self._require(method, "GET", "HEAD")
        if path == "/health":
            return Response(200, b"OK", "text/plain; charset=utf-8")
        return json_response(200, {"version": VERSION, "revision": "madcheck"})

    def _create_admin_token(self) -> Response:
        token = self.tokens.create_first_admin_token()
        if token is None:
            raise HTTPError(
                409,
                "an admin token already exists; to start over, stop the server and delete "
                "tokens.json in the data directory",
            )
        return json_response(201, {"id": 0, "name": "_admin", "token": token})

    def _write(
        self,
        database: str | None,
        body: bytes,
        precisions: dict[str, str],
        precision: str,
        *,
        accept_partial: bool,
        no_sync: bool = False,
    ) -> Response:
        with self._writes_done:
            if not self._accepting_writes:
                raise HTTPError(503, "the server is shutting down")
            self._writes_in_flight += 1
        try:
            result = self._store(database, body, precisions, precision, accept_partial, no_sync)
        finally:
            with self._writes_done:
                self._writes_in_flight -= 1
                self._writes_done.notify_all()
        if not result.errors:
            return Response(204)
        data = [
            {
                "error_message": error.error_message,
                "line_number": error.line_number,
                "original_line": error.original_line,
            }
            for error in result.errors
        ]
        if accept_partial and result.rows:
            raise HTTPError(400, "partial write of line protocol occurred", data)
        raise HTTPError(400, "parsing failed for write_lp endpoint", data)

    def _store(
        self,
        database: str | None,
        body: bytes,
        precisions: dict[str, str],
        precision: str,
        accept_partial: bool,
        no_sync: bool,
    ) -> WriteResult:
        """Store the lines, then hand the stored rows to the engine (``_write`` counts this as a
        write in flight, so shutdown's last flush always comes after it)."""
        if not database:
            raise HTTPError(400, "missing database: pass ?db=NAME (?bucket=NAME for /api/v2)")
        unit = precisions.get(precision)
        if unit is None:
            raise HTTPError(400, f"invalid precision {precision!r}: use {', '.join(precisions)}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPError(400, "line protocol must be UTF-8") from exc
        try:
            result = self.storage.write_lp(
                database, text, precision=unit, accept_partial=accept_partial, no_sync=no_sync
            )
        except InvalidRequestError as exc:
            raise HTTPError(400, str(exc)) from exc
        self.engine.record_writes(database, result.rows)
        return result

    def _query(
        self, method: str, query: dict[str, str], read_body: Callable[[], bytes]
    ) -> Response:
        self._require(method, "GET", "POST")
        options: dict[str, Any] = dict(query)
        if method == "POST":
            body = read_body()
            if body.strip():
                options.update(_json_object(body))
        elif isinstance(options.get("params"), str):
            options["params"] = _json_object(options["params"].encode("utf-8"), what="params")
        database, sql = options.get("db"), options.get("q")
        fmt = options.get("format") or "json"
        if not isinstance(database, str) or not database:
            raise HTTPError(400, "missing db: the database to query")
        if not isinstance(sql, str) or not sql.strip():
            raise HTTPError(400, "missing q: the SQL query")
        if fmt not in FORMATS:
            raise HTTPError(400, f"invalid format {fmt!r}: use {', '.join(FORMATS)}")
        params = options.get("params")
        if params is not None and not isinstance(params, dict):
            raise HTTPError(400, "params must be a JSON object of name -> value")
        try:
            rows = self.storage.query(database, sql, _param_strings(params))
        except QueryError as exc:
            raise HTTPError(400, str(exc)) from exc
        return Response(200, render(rows, fmt).encode("utf-8"), FORMATS[fmt])

    def _engine_request(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        plugin_headers = {k: v for k, v in headers.items() if k != "authorization"}
        try:
            served, result = self.engine.handle_request(
                path, RequestCall(query, plugin_headers, body)
            )
        except EngineError as exc:
            raise HTTPError(exc.status, str(exc)) from exc
        if not served:
            raise HTTPError(404, f"no enabled request trigger serves {path!r}")
        return plugin_response(result)

    def _create_trigger(self, body: bytes) -> Response:
        request = _json_object(body)
        arguments = request.get("trigger_arguments") or {}
        if not isinstance(arguments, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in arguments.items()
        ):
            raise HTTPError(400, "trigger_arguments must be an object of string -> string")
        fields = ("db", "trigger_name", "plugin_filename", "trigger_specification")
        values = [request.get(name) for name in fields]
        missing = [
            n for n, v in zip(fields, values, strict=True) if not isinstance(v, str) or not v
        ]
        if missing:
            raise HTTPError(400, f"missing or empty: {', '.join(missing)}")
        disabled = request.get("disabled", False)
        if not isinstance(disabled, bool):
            raise HTTPError(400, "disabled must be true or false")
        run_async, error_behavior = _trigger_settings(request.get("trigger_settings"))
        definition = TriggerDefinition(
            database=str(values[0]),
            name=str(values[1]),
            plugin_filename=str(values[2]),
            trigger_specification=str(values[3]),
            trigger_arguments=dict(arguments),
            disabled=disabled,
            run_async=run_async,
            error_behavior=error_behavior,
        )
        self._engine_call(lambda: self.engine.create_trigger(definition))
        return Response(200)

    def _upload_plugin_file(self, body: bytes) -> Response:
        """``create trigger --upload``: one file into the plugin dir (every token here is admin)."""
        request = _json_object(body)
        name, content = request.get("plugin_name"), request.get("content")
        if not isinstance(name, str) or not isinstance(content, str):
            raise HTTPError(400, "plugin_name and content must be strings")
        try:
            save_plugin_file(self.config.plugin_dir, name, content)
        except PluginPathError as exc:
            raise HTTPError(400, str(exc)) from None
        except UnicodeEncodeError:
            raise HTTPError(400, f"content of {name!r} is not valid text") from None
        except OSError as exc:
            raise HTTPError(500, f"cannot write plugin file {name!r}: {exc.strerror}") from None
        logger.info("plugin file %r written to the plugin dir", name)
        return Response(200)

    def _trigger_identity(self, query: dict[str, str], body: bytes) -> tuple[str, str]:
        identity: dict[str, Any] = dict(query)
        if body.strip():
            identity.update(_json_object(body))
        database, name = identity.get("db"), identity.get("trigger_name")
        if not isinstance(database, str) or not isinstance(name, str) or not database or not name:
            raise HTTPError(400, "db and trigger_name are required")
        return database, name

    def _delete_trigger(self, query: dict[str, str], body: bytes) -> Response:
        database, name = self._trigger_identity(query, body)
        self._engine_call(lambda: self.engine.delete_trigger(database, name))
        return Response(200)

    def _set_disabled(self, query: dict[str, str], body: bytes, *, disabled: bool) -> Response:
        database, name = self._trigger_identity(query, body)
        self._engine_call(lambda: self.engine.set_disabled(database, name, disabled))
        return Response(200)

    @staticmethod
    def _engine_call(action: Callable[[], None]) -> None:
        try:
            action()
        except EngineError as exc:
            raise HTTPError(exc.status, str(exc)) from exc


def _trigger_settings(settings: Any) -> tuple[bool, str]:
    """``trigger_settings`` of a create-trigger request: ``(run_async, error_behavior)``.

    Required, as InfluxDB 3 requires it (``{"run_async": false, "error_behavior": "log"}`` is
    what its CLI sends by default); ``error_behavior`` is ``log``, ``retry`` or ``disable``.
    """
    if not isinstance(settings, dict):
        raise HTTPError(
            400,
            "trigger_settings is required: an object with run_async (true|false) and "
            "error_behavior (log|retry|disable)",
        )
    run_async, error_behavior = settings.get("run_async"), settings.get("error_behavior")
    if not isinstance(run_async, bool):
        raise HTTPError(400, "trigger_settings.run_async must be true or false")
    if error_behavior not in ERROR_BEHAVIORS:
        raise HTTPError(
            400, f"trigger_settings.error_behavior must be one of {', '.join(ERROR_BEHAVIORS)}"
        )
    return run_async, str(error_behavior)


def _json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise HTTPError(400, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise HTTPError(400, f"{what} must be a JSON object")
    return value


def _param_strings(params: dict[str, Any] | None) -> dict[str, str] | None:
    """Query parameters as strings, the only type ``$name`` parameters take here."""
    if params is None:
        return None
    converted: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, dict | list) or value is None:
            raise HTTPError(400, f"parameter {name!r} must be a string or a number")
        converted[name] = json.dumps(value) if isinstance(value, bool) else str(value)
    return converted


def plugin_response(result: Any) -> Response:
    """Turn what ``process_request`` returned into a response, as the engine does."""
    status, headers = 200, None
    if isinstance(result, tuple):
        if len(result) not in (2, 3) or not isinstance(result[1], int):
            raise HTTPError(500, "process_request returned a tuple not shaped (body, status[, h])")
        body, status = result[0], result[1]
        if len(result) == 3:
            headers = {str(k): str(v) for k, v in dict(result[2]).items()}
        result = body
    if result is None:
        response = Response(status, b"", "text/plain; charset=utf-8")
    elif isinstance(result, dict | list):
        response = Response(status, json.dumps(result).encode("utf-8"))
    elif isinstance(result, bytes):
        response = Response(status, result, "application/octet-stream")
    else:
        response = Response(status, str(result).encode("utf-8"), "text/plain; charset=utf-8")
    response.headers = headers
    return response


def _make_handler(server: EngineServer) -> type[BaseHTTPRequestHandler]:
    max_bytes = server.config.max_request_bytes

    class Handler(BaseHTTPRequestHandler):
        server_version = "madcheck"
        # HTTP/1.1 so that clients sending "Expect: 100-continue" (curl, for bodies over 1 KiB)
        # get their "100 Continue" at once; every response still closes the connection.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raise HTTPError(411, "send the body with a Content-Length header")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError as exc:
                raise HTTPError(400, "invalid Content-Length") from exc
            if length > max_bytes:
                raise HTTPError(413, f"request body larger than the {max_bytes} byte limit")
            body = self.rfile.read(length) if length > 0 else b""
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = _gunzip(body, max_bytes)
            return body

        def _handle(self) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            try:
                response = server.dispatch(self.command, self.path, headers, self._read_body)
            except HTTPError as exc:
                payload: dict[str, Any] = {"error": str(exc)}
                if exc.data is not None:
                    payload["data"] = exc.data
                response = json_response(exc.status, payload)
                if exc.status == 413:
                    self.close_connection = True
            except Exception:
                logger.exception("internal error answering %s %s", self.command, self.path)
                response = json_response(500, {"error": "internal server error"})
            self._send(response)

        def _send(self, response: Response) -> None:
            status = HTTPStatus(response.status) if response.status in _KNOWN else response.status
            self.send_response(status)
            self.send_header("Connection", "close")
            self.close_connection = True
            if response.status != 204:
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
            for key, value in (response.headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if response.status != 204 and self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _handle

    return Handler


_KNOWN = {status.value for status in HTTPStatus}


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=31)
    try:
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise HTTPError(400, "invalid gzip body") from exc
    if len(data) > max_bytes:
        raise HTTPError(413, f"request body larger than the {max_bytes} byte limit")
    return data
